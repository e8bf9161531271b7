"""Find the ``App`` a command should run: ``app.py``, ``path/to/app.py:attr``,
``package.module`` or ``package.module:attr``.

A file is imported under its own module name (``app.py`` -> ``app``) with its directory on
``sys.path``, so models defined next to it import the same way in every process (pickled
values and agent names stay stable); a file inside packages (directories with
``__init__.py``) is imported as ``package.module`` from above the top package, the name
``python path/app.py`` gives it too (``streamlog.dsl.agents.naming``). Without ``:attr``
the module must hold exactly one App.

Before the import, ``streamlog.faust.install()`` makes ``import faust`` import streamlog's
Faust namespace when no real faust is installed: Faust programs load unchanged.

Every failure is an ``AppNotFoundError`` whose message fits on one line, including an
exception raised by the app's own code while it is imported: the message then names the
exception and the innermost line of user code it came from (``... (at app.py:12)``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from types import ModuleType

from streamlog.dsl import App, AppNotFoundError
from streamlog.dsl.agents.naming import module_name_for_file

__all__ = ["load_app"]


def load_app(spec: str) -> App:
    """The App ``spec`` names (see the module docstring); ``AppNotFoundError`` if none."""
    from streamlog.faust import install  # the compatibility namespace sits above the CLI

    install()
    target, _, attr = spec.partition(":")
    module = _import(target)
    if attr:
        obj = getattr(module, attr, None)
        if not isinstance(obj, App):
            raise AppNotFoundError(
                f"{target} has no App named {attr!r}"
                + (f" ({attr} is a {type(obj).__name__})" if obj is not None else "")
            )
        return obj
    apps = {name: obj for name, obj in vars(module).items() if isinstance(obj, App)}
    if len(apps) == 1:
        return next(iter(apps.values()))
    if not apps:
        raise AppNotFoundError(f"no streamlog.App found in {target}{_why_no_app(module)}")
    names = ", ".join(sorted(apps))
    raise AppNotFoundError(
        f"{target} defines several Apps ({names}): name one, e.g. {target}:{min(apps)}"
    )


def _why_no_app(module: ModuleType) -> str:
    """The hint for a module without a streamlog App: an App of the real Faust (installed,
    so ``import faust`` imported it), or how to define one."""
    for obj in vars(module).values():
        kind = type(obj)
        if kind.__name__ == "App" and kind.__module__.split(".")[0] == "faust":
            return (
                f" (it defines a {kind.__module__}.App: faust-streaming is installed, so "
                "'import faust' imports it; uninstall it to run the program with streamlog, "
                "or write 'import streamlog as faust')"
            )
    return " (define app = streamlog.App(...))"


def _import(target: str) -> ModuleType:
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise AppNotFoundError(f"no such file: {target}")
        name, directory = module_name_for_file(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        if "." in name:
            return _import_package_module(target, name, path)
        existing = sys.modules.get(name)
        if (
            existing is not None
            and os.path.abspath(getattr(existing, "__file__", "") or "") == path
        ):
            return existing
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise AppNotFoundError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise _import_failed(target, exc) from exc
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name == target or target.startswith(f"{exc.name}."):
            raise AppNotFoundError(
                f"no module named {target!r} (give app.py or module:attr)"
            ) from None
        raise _import_failed(target, exc) from exc
    except Exception as exc:
        raise _import_failed(target, exc) from exc


def _import_package_module(target: str, name: str, path: str) -> ModuleType:
    """Import ``name`` (a module inside packages) and check it is the file ``path``."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:
        raise _import_failed(target, exc) from exc
    found = os.path.abspath(getattr(module, "__file__", "") or "")
    if found != path:
        raise AppNotFoundError(f"cannot import {target}: {name} is {found or 'another module'}")
    return module


_STREAMLOG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_failed(target: str, exc: Exception) -> AppNotFoundError:
    """One line for an exception raised by the app's code: what, and the user's line."""
    message = " ".join(str(exc).split()) or "(no message)"
    if isinstance(exc, SyntaxError):
        message = exc.msg
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else None
    else:
        where = None
        for frame in traceback.extract_tb(exc.__traceback__):
            filename = frame.filename
            if filename.startswith("<") or filename.startswith(_STREAMLOG_DIR + os.sep):
                continue  # importlib's machinery and streamlog's own code
            where = f"{filename}:{frame.lineno}"
    suffix = f" (at {where})" if where else ""
    return AppNotFoundError(f"cannot import {target}: {type(exc).__name__}: {message}{suffix}")
