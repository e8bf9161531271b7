"""Exceptions of the ``streamlog`` command.

What a user gets wrong on the command line is answered by click (``click.UsageError``,
``click.ClickException``: a message and an exit status); the classes here are the
command's own, raised and caught inside it, and derive from ``CliError``.
"""

from __future__ import annotations

from streamlog.errors import StreamlogError

__all__ = ["CliError", "Interrupted", "SupervisorError"]


class CliError(StreamlogError):
    """Base of the errors the ``streamlog`` command raises on purpose."""


class Interrupted(CliError):
    """The coroutine was cancelled by Ctrl-C or SIGTERM (and did not handle it)."""


class SupervisorError(CliError):
    """``worker --processes N`` cannot start: a log its workers could not share, web ports
    past 65535."""
