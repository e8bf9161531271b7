"""``import faust`` answered by streamlog, for the migration test only, until the
``streamlog.faust`` compatibility namespace lands: the two names the test program uses."""

from streamlog import App, Record

__all__ = ["App", "Record"]
