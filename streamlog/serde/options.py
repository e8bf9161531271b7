"""A Record class's options: Faust's ``class Ride(Record, isodates=True, ...)`` keywords.

Faust's keywords are taken off before msgspec sees the class keywords, checked, and kept on
the class as a ``RecordOptions`` (``Ride._options``, Faust's name; ``__record_options__``).
A subclass starts from its base's options as Faust's ``clone_defaults`` does: everything
is inherited except ``namespace`` (each class has its own), ``validation`` and
``date_parser`` (Faust does not carry those two down either; ``coerce``, which
``validation`` turns on, is carried).

``namespace`` is what the ``"__faust": {"ns": ...}`` tag names: by default Faust's
``canoname``, ``module.qualname`` with a ``__main__`` module renamed after the file that
runs (``python app.py worker`` writes ``app.Ride``, as ``faust -A app worker`` does).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["RecordOptions", "FAUST_OPTIONS", "options_for", "canonical_name"]

# the class keywords taken here; the rest go to msgspec.Struct
FAUST_OPTIONS = frozenset(
    {
        "serializer",
        "namespace",
        "include_metadata",
        "isodates",
        "abstract",
        "allow_blessed_key",
        "decimals",
        "coerce",
        "coercions",
        "polymorphic_fields",
        "validation",
        "date_parser",
        "lazy_creation",
        "strict",
    }
)

_BOOLS = (
    "include_metadata",
    "isodates",
    "abstract",
    "allow_blessed_key",
    "decimals",
    "coerce",
    "polymorphic_fields",
    "validation",
    "strict",
)


@dataclasses.dataclass(frozen=True)
class RecordOptions:
    """How a Record class is (de)serialised. Faust's defaults, plus ``strict``.

    * ``include_metadata``: write the ``"__faust": {"ns": namespace}`` tag, so a reader
      without a declared type gets this Record back (Faust's default: on).
    * ``isodates`` / ``decimals``: when decoding, turn ISO strings in ``datetime`` fields
      into datetimes / values of ``Decimal`` fields into Decimals.
    * ``coerce``: convert every field to its annotated type, on construction and decoding
      (``int("3")``, ``float``, ``str``, ``bool``, ``Decimal``, ``date_parser`` for
      datetimes); ``validation`` coerces and then refuses blank strings and non-finite
      Decimals (Faust's field validators).
    * ``polymorphic_fields`` / ``allow_blessed_key``: a value tagged with this class's
      namespace is built as this class even where a base class is declared.
    * ``strict`` (streamlog's): decode with msgspec's full type checks, refusing any value
      whose JSON does not match the annotations (the behaviour before Faust's rules).
    """

    serializer: Any = None
    namespace: str = ""
    include_metadata: bool = True
    isodates: bool = False
    abstract: bool = False
    allow_blessed_key: bool = False
    decimals: bool = False
    coerce: bool = False
    coercions: Mapping[Any, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    polymorphic_fields: bool = False
    validation: bool = False
    date_parser: Callable[[Any], datetime] | None = None
    strict: bool = False


def options_for(
    cls_name: str,
    module: str,
    qualname: str,
    base: RecordOptions | None,
    given: Mapping[str, Any],
    inner: Mapping[str, Any] | None = None,
) -> RecordOptions:
    """The options of a new class: its base's (see the module docstring), then those of a
    Faust ``class Options:`` inside it, then the class keywords. ``TypeError`` for a value
    of the wrong kind, naming the class."""
    values: dict[str, Any] = {}
    if base is not None:
        values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        values["coercions"] = dict(base.coercions)
        for dropped in ("namespace", "validation", "date_parser", "abstract"):
            values.pop(dropped)
    for source in (inner or {}, given):
        for name, value in source.items():
            if name == "lazy_creation" or value is None:
                continue
            if name == "coercions":
                values["coercions"] = {**values.get("coercions", {}), **dict(value)}
            elif name in FAUST_OPTIONS:
                values[name] = value
    for name in _BOOLS:
        if name in values and not isinstance(values[name], bool):
            raise TypeError(f"{cls_name}: {name} must be True or False, got {values[name]!r}")
    if values.get("validation"):
        values["coerce"] = True  # Faust: validation implies coerce
    parser = values.get("date_parser")
    if parser is not None and not callable(parser):
        raise TypeError(f"{cls_name}: date_parser must be callable, got {parser!r}")
    namespace = values.get("namespace") or canonical_name(module, qualname)
    if not isinstance(namespace, str):
        raise TypeError(f"{cls_name}: namespace must be a string, got {namespace!r}")
    values["namespace"] = namespace
    return RecordOptions(**values)


def canonical_name(module: str, qualname: str) -> str:
    """Faust's ``canoname``: ``module.qualname``, ``__main__`` named after the running file
    (with the packages it sits in), as Faust tags records written by ``python app.py``."""
    if module == "__main__":
        module = _main_name()
    return f"{module}.{qualname}"


def _main_name() -> str:
    main = sys.modules.get("__main__")
    filename = getattr(main, "__file__", None)
    if not filename:
        return "__main__"
    path = Path(filename).absolute()
    # mode's order, innermost package first (``pkg/sub/app.py`` -> ``sub.pkg.app``): the
    # tag must be the very string Faust writes
    packages: list[str] = []
    node = path.parent
    while (node / "__init__.py").exists():
        packages.append(node.name)
        node = node.parent
    return ".".join([*packages, path.stem])
