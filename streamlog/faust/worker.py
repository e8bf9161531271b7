"""``faust.worker``: ``Worker(app).execute_from_commandline()``."""

from streamlog.cli.worker import Worker

__all__ = ["Worker"]
