"""The bundled log's data directory format version: refuse newer, upgrade older.

A data directory outlives the streamlog that wrote it (a user downgrades, or copies a
directory to a machine with an older release). A streamlog reading a format it does not
know could misread it and, worse, write it back in its own format; so the directory
records its format in ``.format`` (``format=N``), written when the directory is made:

* a newer format than this streamlog's ``CURRENT_FORMAT``: ``DataFormatTooNewError``, and
  nothing is read or written (the message names both versions and what to do);
* an older one: upgraded in place by the steps of ``UPGRADES`` (one per version), each
  made so that running it twice does no harm, the version written after each step
  (temporary file, fsync, rename, directory fsync): a crash mid-upgrade leaves the old
  version recorded and the next start runs the step again;
* no ``.format``: a new, empty directory gets the current format; one with data is a
  directory from before formats were recorded (format 0) and is upgraded;
* an unreadable ``.format``: ``DataFormatError`` (it is not guessed).

Format 1 is format 0 with the version recorded: its step only writes the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from streamlog.log.checkpoint import fsync_directory
from streamlog.log.errors import DataFormatError, DataFormatTooNewError

__all__ = ["CURRENT_FORMAT", "FORMAT_FILE", "UPGRADES", "check_format", "read_format"]

log = logging.getLogger(__name__)

FORMAT_FILE = ".format"
CURRENT_FORMAT = 1
_MAX_FORMAT_FILE_BYTES = 4096

# UPGRADES[n] turns a format-n directory into format n+1 (idempotent: it may run again
# after a crash before the new version was recorded).
UPGRADES: dict[int, Callable[[str], None]] = {
    0: lambda data_dir: None,  # format 1 only records the version
}


def read_format(data_dir: str) -> int | None:
    """The recorded format, None when the directory records none."""
    path = os.path.join(data_dir, FORMAT_FILE)
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_FORMAT_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(raw) > _MAX_FORMAT_FILE_BYTES:
        raise DataFormatError(f"{path}: larger than {_MAX_FORMAT_FILE_BYTES} bytes")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not text") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "format" and value.strip().isdigit():
            return int(value.strip())
    raise DataFormatError(f"{path}: no 'format=N' line (found {text[:80]!r})")


def check_format(data_dir: str, has_data: bool) -> int:
    """Make ``data_dir`` this streamlog's format, or refuse it (module docstring); the
    format it had."""
    found = read_format(data_dir)
    if found is None:
        found = 0 if has_data else CURRENT_FORMAT
        if not has_data:
            _write(data_dir, CURRENT_FORMAT)
            return found
    if found > CURRENT_FORMAT:
        raise DataFormatTooNewError(
            f"the data directory {data_dir} has format {found}, written by a newer "
            f"streamlog; this one reads formats up to {CURRENT_FORMAT}. Run a streamlog "
            "release that knows it (the directory was left as it is)"
        )
    version = found
    while version < CURRENT_FORMAT:
        UPGRADES[version](data_dir)
        version += 1
        _write(data_dir, version)
        log.warning(
            "data directory %s upgraded in place from format %d to %d",
            data_dir,
            version - 1,
            version,
        )
    return found


def _write(data_dir: str, version: int) -> None:
    path = os.path.join(data_dir, FORMAT_FILE)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="ascii") as f:
        f.write(f"format={version}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    fsync_directory(data_dir)
