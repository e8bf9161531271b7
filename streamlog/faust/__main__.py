"""``python -m streamlog.faust``: run a Faust program unchanged, with ``import faust`` left in.

* ``python -m streamlog.faust app.py ARGS...`` runs ``app.py`` as ``python app.py ARGS...``
  would (as ``__main__``: its ``if __name__ == "__main__": app.main()`` and a ``main()``
  registering agents run), with ``faust`` importable as ``streamlog.faust``;
* ``python -m streamlog.faust -A APP ARGS...`` is Faust's ``faust -A APP ARGS...``: APP
  (``module``, ``module:attr``, ``app.py``) is imported and ARGS run on its command line
  (``worker -l info``, ``send``, the app's own commands).

This is the ``faust`` program of the compatibility namespace, under a name of its own: a
``faust`` executable installed by streamlog would take the place of faust-streaming's
wherever both are installed. ``install()`` likewise leaves a real faust alone.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from streamlog.faust import install

USAGE = """\
usage: python -m streamlog.faust PROGRAM.py [ARGS]...   (as: python PROGRAM.py ARGS...)
   or: python -m streamlog.faust -A APP COMMAND [ARGS]...   (as: faust -A APP COMMAND ...)
"""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run what ``argv`` (default ``sys.argv[1:]``) asks for (module docstring) and exit."""
    args = list(sys.argv[1:] if argv is None else argv)
    install()
    spec, rest = take_app_option(args)
    if spec is not None:
        from streamlog.cli.app_main import run_main
        from streamlog.cli.builtin import load_app_or_exit

        try:
            app = load_app_or_exit(spec)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        run_main(app, rest)
    if args and args[0].endswith(".py"):
        run_program(args[0], args[1:])
    sys.stderr.write(USAGE)
    sys.exit(0 if args and args[0] in ("-h", "--help") else 2)


def take_app_option(args: Sequence[str]) -> tuple[str | None, list[str]]:
    """Faust's ``-A APP`` / ``--app APP`` / ``--app=APP``, and the other arguments in order."""
    rest: list[str] = []
    spec: str | None = None
    items = iter(args)
    for arg in items:
        if spec is None and arg in ("-A", "--app"):
            spec = next(items, None)
            if spec is None:
                raise SystemExit(f"{arg} needs a value: the app (module, module:attr or app.py)")
        elif spec is None and arg.startswith("--app="):
            spec = arg.partition("=")[2]
        else:
            rest.append(arg)
    return spec, rest


def run_program(path: str, args: Sequence[str]) -> NoReturn:
    """Run the file ``path`` as ``__main__`` with ``args``, as ``python path args`` does."""
    if not os.path.isfile(path):
        sys.stderr.write(f"Error: no such file: {path}\n")
        sys.exit(1)
    sys.argv = [path, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(path))
    runpy.run_path(path, run_name="__main__")
    sys.exit(0)


if __name__ == "__main__":
    main()
