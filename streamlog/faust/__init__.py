"""Faust's names over streamlog: a program written for Faust runs with ``import faust``.

This package exports the public names of Faust's ``faust`` package that streamlog
implements (``App``, ``Record``, ``Stream``, ``Table``, ``Topic``, ``Channel``, the
windows, the ``*T`` typing names, ``Worker``, ``current_event``, ``uuid``, the
``broker_credentials`` objects ``SASLCredentials``, ``SSLCredentials``,
``GSSAPICredentials`` and ``OAuthCredentials``), and the
submodules ``faust.cli``, ``faust.types``, ``faust.web``, ``faust.windows`` and
``faust.worker``. Two ways to use it:

* run the program with streamlog (``streamlog worker app.py``, ``streamlog app.py COMMAND``,
  ``python -m streamlog.faust app.py worker``, ``python -m streamlog.faust -A app
  worker``): these call ``install()`` before the program is imported, so its
  ``import faust``, ``from faust import ...``, ``import faust.cli`` and
  ``from faust.types import ...`` find this package;
* or write ``import streamlog.faust as faust`` (or ``import streamlog as faust``).

``install()`` never shadows a real Faust: when a module named ``faust`` can be imported
(faust-streaming is installed, or the program has its own ``faust.py``), it does nothing
and the program gets that one.

The submodules only re-export names defined elsewhere in streamlog. They may be loaded
twice (as ``streamlog.faust.cli`` and, through ``import faust.cli``, as ``faust.cli``):
both copies then hold the same objects.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

from streamlog import __version__
from streamlog.cli.commands import AppCommand, Command
from streamlog.dsl import Agent, App, Channel, Event, Settings, Stream, Topic
from streamlog.dsl.runtime.context import current_event
from streamlog.dsl.tables.kinds import GlobalTable, SetTable
from streamlog.dsl.tables.table import Table
from streamlog.serde import Codec, Record, Schema
from streamlog.state.windows import HoppingWindow, SlidingWindow, TumblingWindow
from streamlog.transport.credentials import (
    GSSAPICredentials,
    OAuthCredentials,
    SASLCredentials,
    SSLCredentials,
)
from streamlog.types import AgentT, AppT, ChannelT, EventT, ModelT, StreamT, TableT, TopicT
from streamlog.uuids import uuid

__all__ = [
    "Agent",
    "AgentT",
    "App",
    "AppCommand",
    "AppT",
    "Channel",
    "ChannelT",
    "Codec",
    "Command",
    "Event",
    "EventT",
    "GSSAPICredentials",
    "GlobalTable",
    "HoppingWindow",
    "ModelT",
    "OAuthCredentials",
    "Record",
    "SASLCredentials",
    "SSLCredentials",
    "Schema",
    "SetTable",
    "Settings",
    "SlidingWindow",
    "Stream",
    "StreamT",
    "Table",
    "TableT",
    "Topic",
    "TopicT",
    "TumblingWindow",
    "Worker",
    "__version__",
    "cli",
    "current_event",
    "install",
    "types",
    "uuid",
    "web",
    "windows",
    "worker",
]

#: The submodules, imported when first used (``faust.web`` needs the web server's module).
SUBMODULES = ("cli", "types", "web", "windows", "worker")


def install() -> bool:
    """Make ``import faust`` import this package, unless a real ``faust`` is importable.

    Returns True when ``faust`` is (now) this package, False when another ``faust`` is
    there: an installed faust-streaming, or a ``faust`` module of the program's own. Only
    ``sys.modules["faust"]`` is set; ``faust.cli`` and the other submodules are found
    through this package's path.
    """
    this = sys.modules[__name__]
    current = sys.modules.get("faust")
    if current is not None:
        return current is this
    if importlib.util.find_spec("faust") is not None:
        return False
    sys.modules["faust"] = this
    return True


def __getattr__(name: str) -> Any:
    """``faust.cli``, ``faust.web``...: the submodules, imported on first use."""
    if name == "Worker":
        from streamlog.cli.worker import Worker

        return Worker
    if name in SUBMODULES:
        module: ModuleType = importlib.import_module(f"{__name__}.{name}")
        return module
    raise AttributeError(f"module 'faust' (streamlog.faust) has no attribute {name!r}")
