"""streamlog.serde: typed models, codecs and the key/value schemas of topics.

``Record`` is Faust's model on msgspec; ``Schema`` compiles a topic's key and value
(de)serialisation into four fast functions; codecs are found by name in a
``CodecRegistry`` (``default_codecs()`` gives a fresh one: there is no global registry).
"""

from streamlog.serde import codecs, errors
from streamlog.serde.codecs import Codec, CodecRegistry, default_codecs
from streamlog.serde.errors import (
    DecodeError,
    EncodeError,
    KeyDecodeError,
    KeyEncodeError,
    SchemaError,
    SerdeError,
    UnknownCodecError,
    ValidationError,
    ValueDecodeError,
    ValueEncodeError,
)
from streamlog.serde.models import Record, RecordOptions, field_getter, field_name
from streamlog.serde.schema import Schema

__all__ = [
    "Codec",
    "CodecRegistry",
    "DecodeError",
    "EncodeError",
    "KeyDecodeError",
    "KeyEncodeError",
    "Record",
    "RecordOptions",
    "Schema",
    "SchemaError",
    "SerdeError",
    "UnknownCodecError",
    "ValidationError",
    "ValueDecodeError",
    "ValueEncodeError",
    "codecs",
    "default_codecs",
    "errors",
    "field_getter",
    "field_name",
]
