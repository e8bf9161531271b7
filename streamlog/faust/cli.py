"""``faust.cli``: ``option`` and ``argument`` for ``@app.command``, ``AppCommand``."""

from streamlog.cli.commands import AppCommand, Command, argument, option

__all__ = ["AppCommand", "Command", "argument", "option"]
