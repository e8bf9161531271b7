"""A worker's transactional id under exactly-once: stable across restarts, never shared.

Why stable: a worker killed mid-transaction leaves it open, and until it is aborted the
last stable offset of every partition it wrote stops there, so read_committed readers
(downstream apps, this app's own recovery) wait. ``init_transactions`` with the same
transactional id aborts it at once; a new id leaves it to the coordinator's timeout
(``producer_transaction_timeout``). So a worker restarted on the same data directory
takes the id its predecessor had.

Why never shared: two live workers with one id would fence each other in turn. Ids are
kept as slots in ``<datadir>/transactional-ids/``: ``slot-N`` holds a random id made the
first time the slot is used, and a worker holds the slot's lock file (``flock``) while it
runs; a second worker on the same data directory takes the next free slot. The lock goes
with the process, however it ends, so a restart finds the slot free again. The random
part keeps two machines whose data directories have the same path apart.
"""

from __future__ import annotations

import fcntl
import os
import uuid

from streamlog.dsl.errors import TransactionalIdsInUseError

__all__ = ["TransactionalIdClaim", "claim_transactional_id"]

_SLOTS_DIR = "transactional-ids"
_MAX_SLOTS = 1024


class TransactionalIdClaim:
    """A slot held by this process: its transactional id, until ``release``."""

    def __init__(self, transactional_id: str, lock_fd: int) -> None:
        self.transactional_id = transactional_id
        self._lock_fd: int | None = lock_fd

    def __repr__(self) -> str:
        return f"TransactionalIdClaim({self.transactional_id!r})"

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing drops the flock


def claim_transactional_id(app_id: str, datadir: str) -> TransactionalIdClaim:
    """The lowest free slot's id in ``datadir``, as ``<app_id>-<random hex>``."""
    directory = os.path.join(datadir, _SLOTS_DIR)
    os.makedirs(directory, exist_ok=True)
    for slot in range(_MAX_SLOTS):
        fd = os.open(os.path.join(directory, f"slot-{slot}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            suffix = _slot_suffix(os.path.join(directory, f"slot-{slot}"))
        except BaseException:
            os.close(fd)
            raise
        return TransactionalIdClaim(f"{app_id}-{suffix}", fd)
    raise TransactionalIdsInUseError(
        f"all {_MAX_SLOTS} transactional id slots in {directory} are in use"
    )


def _slot_suffix(path: str) -> str:
    """The slot's random part, made (atomically) the first time the slot is used."""
    try:
        with open(path, encoding="ascii") as file:
            text = file.read().strip()
        if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
            return text
    except FileNotFoundError:
        pass
    text = uuid.uuid4().hex
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="ascii") as file:
        file.write(text + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return text
