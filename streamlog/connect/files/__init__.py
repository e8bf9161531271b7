"""Files: JSON lines and CSV, read once or followed like ``tail -F`` (``FileSource``), and
written with rotation by size and time (``FileSink``). docs/connect-files.md says how."""

from streamlog.connect.files.config import sink_from_config, source_from_config
from streamlog.connect.files.sink import FileSink
from streamlog.connect.files.source import FileSource

__all__ = ["FileSource", "FileSink", "source_from_config", "sink_from_config"]
