"""The log engine's exceptions, translated into the transport's (``transport/errors.py``).

Nothing from ``streamlog.log.errors`` leaves the embedded transport: callers catch the
same ``TransportError`` classes whichever transport they run on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from streamlog.log import errors as log_errors
from streamlog.transport import errors

__all__ = ["translate", "translated"]

_DIRECT: tuple[tuple[type[log_errors.LogError], type[errors.TransportError]], ...] = (
    # Most specific first: RecordTooLargeError is an InvalidRecordError.
    (log_errors.RecordTooLargeError, errors.RecordTooLargeError),
    (log_errors.UnknownTopicError, errors.UnknownTopicError),
    (log_errors.TopicExistsError, errors.TopicExistsError),
    (log_errors.InvalidPartitionsError, errors.InvalidPartitionsError),
    (log_errors.InvalidConfigError, errors.InvalidConfigError),
    (log_errors.OffsetOutOfRangeError, errors.OffsetOutOfRangeError),
    (log_errors.InvalidRecordError, errors.RecordRejectedError),
    (log_errors.CorruptRecordError, errors.TransportError),
    (log_errors.DataDirectoryLockedError, errors.BrokerUnavailableError),
    (log_errors.LogClosedError, errors.TransportClosedError),
    # There is no InvalidTopicError in the transport interface (yet): Kafka answers
    # INVALID_TOPIC_EXCEPTION, which has no closer match than the base class.
    (log_errors.InvalidTopicNameError, errors.TransportError),
)


def translate(exc: log_errors.LogError) -> errors.TransportError:
    """The transport error for a log engine error (message kept, cause chained by caller)."""
    for source, target in _DIRECT:
        if isinstance(exc, source):
            return target(str(exc))
    return errors.TransportError(str(exc))


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise any ``LogError`` inside the block as its ``TransportError``."""
    try:
        yield
    except log_errors.LogError as exc:
        raise translate(exc) from exc
