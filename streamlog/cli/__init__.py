"""The ``streamlog`` command line, and what an app's own commands are made of.

``option``, ``argument``, ``Command`` and ``AppCommand`` are Faust's ``faust.cli`` names:
``@app.command(option("--n", type=int), argument("name"))`` (see ``commands``).
"""

from streamlog.cli.commands import AppCommand, Command, argument, option

__all__ = ["AppCommand", "Command", "argument", "option"]
