"""The names agents, timers and DSL nodes get from their functions.

An agent declared without a channel reads the topic ``<app-id>-<module>.<function>``, so
its name must not depend on how the program was started. A program run as
``python app.py worker`` is the module ``__main__``, the same file loaded by
``streamlog worker app.py`` is the module ``app``: ``__main__`` is therefore replaced by
the name the main module would be imported under (as Faust's ``canonshortname`` does), so
both starts read and write the same topics.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

__all__ = ["callable_name", "main_module_name", "module_name_for_file"]


def callable_name(fun: Any) -> str:
    """``module.qualname`` of ``fun`` (a ``functools.partial`` is named by the function it
    wraps), with ``__main__`` resolved by ``main_module_name``."""
    while isinstance(fun, functools.partial):
        fun = fun.func
    module = getattr(fun, "__module__", None) or type(fun).__module__
    qualname = getattr(fun, "__qualname__", None) or type(fun).__qualname__
    if module == "__main__":
        module = main_module_name()
    return f"{module}.{qualname}"


def main_module_name() -> str:
    """The name ``__main__`` would have if it were imported.

    ``python -m pkg.app``: ``pkg.app`` (from its spec). ``python path/app.py``: ``app``,
    prefixed by the packages around it (``examples/word_count.py`` next to
    ``examples/__init__.py`` is ``examples.word_count``). ``__main__`` itself when there is
    no file (a REPL, ``python -c``).
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name).removesuffix(".__main__")
    filename = getattr(main, "__file__", None)
    if not filename:
        return "__main__"
    return module_name_for_file(filename)[0]


def module_name_for_file(filename: str) -> tuple[str, str]:
    """(dotted module name, directory it is importable from) of a Python file: its stem,
    prefixed by the packages (directories with ``__init__.py``) around it."""
    directory, base = os.path.split(os.path.abspath(filename))
    parts = [os.path.splitext(base)[0]]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.append(package)
    return ".".join(reversed(parts)), directory
