"""Cheap, shallow type checks for values about to be encoded.

Decoding validates deeply (msgspec does it while parsing, at no extra cost). Encoding does
not: msgspec writes whatever it is given, so a producer that sends ``"x"`` to an ``int``
topic would poison it for every consumer. A full check on every send would cost as much as
the encode itself, so the schema checks only the outer type: the class for plain types,
the container for ``list[...]``/``dict[...]``, each member for unions. ``type_name`` gives
the short names that error messages use.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["Checker", "instance_checker", "is_untyped", "type_name"]

Checker = Callable[[Any], bool]

_UNION_ORIGINS: tuple[Any, ...] = (typing.Union, types.UnionType)


def is_untyped(tp: Any) -> bool:
    """True for the types that mean "whatever the codec gives": ``None``, ``Any``, ``object``."""
    return tp is None or tp is Any or tp is object


def type_name(tp: Any) -> str:
    """A short name for messages: ``Ride``, ``int``, ``list[Ride]``, ``Ride | None``."""
    if isinstance(tp, type) and not typing.get_args(tp):
        # a class made inside a function reads "f.<locals>.Ride": the function adds nothing
        return tp.__qualname__.rpartition("<locals>.")[2]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in _UNION_ORIGINS:
        return " | ".join("None" if a is type(None) else type_name(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in args) + "]"
    if origin is not None and args:
        head = origin.__qualname__ if isinstance(origin, type) else repr(origin)
        return head + "[" + ", ".join(type_name(a) for a in args) + "]"
    return repr(tp).replace("typing.", "")


def instance_checker(tp: Any) -> Checker | None:
    """A predicate telling whether a value has the outer shape of ``tp``; None means "any".

    ``bool`` is refused where ``int`` is asked for and ``int`` accepted where ``float`` is,
    matching what msgspec accepts when it decodes the bytes again.
    """
    if is_untyped(tp):
        return None
    if tp is int:
        return _is_int
    if tp is float:
        return _is_float
    if tp is type(None):
        return _is_none
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return instance_checker(typing.get_args(tp)[0])
    if origin in _UNION_ORIGINS:
        return _union_checker(typing.get_args(tp))
    if origin is typing.Literal:
        return _literal_checker(typing.get_args(tp))
    if typing.is_typeddict(tp):
        return _is_dict
    if isinstance(origin, type):
        return _class_checker(origin)
    if isinstance(tp, type):
        return _class_checker(tp)
    return None  # NewType, TypeVar, ...: left to the decoder


def _is_int(obj: Any) -> bool:
    return isinstance(obj, int) and not isinstance(obj, bool)


def _is_float(obj: Any) -> bool:
    return isinstance(obj, int | float) and not isinstance(obj, bool)


def _is_none(obj: Any) -> bool:
    return obj is None


def _is_dict(obj: Any) -> bool:
    return isinstance(obj, dict)


def _class_checker(cls: type) -> Checker | None:
    try:
        isinstance(None, cls)
    except TypeError:  # a Protocol that is not runtime-checkable, and the like
        return None
    return lambda obj: isinstance(obj, cls)


def _union_checker(members: tuple[Any, ...]) -> Checker | None:
    checkers = []
    for member in members:
        check = instance_checker(member)
        if check is None:
            return None
        checkers.append(check)
    return lambda obj: any(check(obj) for check in checkers)


def _literal_checker(values: tuple[Any, ...]) -> Checker:
    allowed = [(type(v), v) for v in values]
    return lambda obj: any(type(obj) is t and obj == v for t, v in allowed)
