"""Build script for the optional C record codec; all other metadata is in pyproject.toml.

``streamlog.log._records_c`` speeds up record batch encoding and decoding 10-20 times,
but streamlog works without it: if the extension cannot be compiled (no compiler, no
Python headers), the install goes on with a warning and ``streamlog.log.records`` uses
its pure-Python kernel. Set ``STREAMLOG_REQUIRE_C=1`` to make a failed build an error
(.ci/run does, so that a broken C file cannot pass unnoticed).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_REQUIRE_C = os.environ.get("STREAMLOG_REQUIRE_C", "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """``build_ext`` that turns a failed compile into a warning unless C is required."""

    _gave_up = False

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # setuptools raises several unrelated types here
            self._give_up(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        if _REQUIRE_C:
            raise exc
        if self._gave_up:
            return  # an --inplace build then fails to copy what was not built: same cause
        self._gave_up = True
        print(
            f"WARNING: the C record codec could not be built ({exc}); "
            "streamlog will use its pure-Python codec.",
            file=sys.stderr,
        )


_COMPILE_ARGS = [] if sys.platform == "win32" else ["-O2", "-std=c11", "-Wall", "-Wextra"]

setup(
    ext_modules=[
        Extension(
            "streamlog.log._records_c",
            sources=["streamlog/log/_records_c.c"],
            extra_compile_args=_COMPILE_ARGS,
            # setuptools' own optional handling would swallow the error STREAMLOG_REQUIRE_C
            # asks for; OptionalBuildExt decides instead.
            optional=False,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
