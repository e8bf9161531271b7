"""Find the ``App`` a command should run: ``app.py``, ``path/to/app.py:attr``,
``package.module`` or ``package.module:attr``.

A file is imported under its own module name (``app.py`` -> ``app``) with its directory on
``sys.path``, so models defined next to it import the same way in every process (pickled
values and agent names stay stable). Without ``:attr`` the module must hold exactly one App.

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

__all__ = ["load_app"]


def load_app(spec: str) -> App:
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
        raise AppNotFoundError(
            f"no streamlog.App found in {target} (define app = streamlog.App(...))"
        )
    names = ", ".join(sorted(apps))
    raise AppNotFoundError(
        f"{target} defines several Apps ({names}): name one, e.g. {target}:{min(apps)}"
    )


def _import(target: str) -> ModuleType:
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise AppNotFoundError(f"no such file: {target}")
        directory, filename = os.path.split(path)
        name = os.path.splitext(filename)[0]
        if directory not in sys.path:
            sys.path.insert(0, directory)
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
