"""streamlog: stream processing for Python on a bundled, Kafka-compatible log.

Importing this package defines things and does nothing else.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
