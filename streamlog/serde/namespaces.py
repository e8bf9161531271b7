"""Finding the Record class a ``"__faust": {"ns": ...}`` tag names.

Faust keeps a global registry filled as model classes are defined. Here the classes are
found by walking the subclasses of ``Record`` (Python already tracks them, and forgets the
ones that were garbage collected), and each reader (a schema, a Record's decoder) keeps
its own cache: there is no module-level state. A namespace that names no class is cached
as unknown, so a stream of tags nobody defines costs one walk, not one per message: the
class must be defined (imported) before values tagged with it are read, as in Faust.
When two live classes share a namespace (classes made again and again in tests), the one
defined last wins, as in Faust's registry.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NamespaceIndex", "TAG", "tagged_namespace"]

TAG = "__faust"
"""Faust's "blessed key": ``{"__faust": {"ns": "module.Class"}}`` inside a serialised Record."""


def tagged_namespace(data: Any) -> str | None:
    """The namespace a decoded value's tag names, or None (not a dict, no tag, bad tag)."""
    if type(data) is not dict:
        return None
    tag = data.get(TAG)
    if type(tag) is not dict:
        return None
    ns = tag.get("ns")
    return ns if type(ns) is str else None


class NamespaceIndex:
    """Namespace -> class for the live subclasses of ``root`` (see the module docstring)."""

    __slots__ = ("_root", "_known", "_unknown")

    def __init__(self, root: type) -> None:
        self._root = root
        self._known: dict[str, type] = {}
        self._unknown: set[str] = set()

    def get(self, namespace: str) -> type | None:
        """The class tagged ``namespace``, or None if no live class has it."""
        found = self._known.get(namespace)
        if found is not None or namespace in self._unknown:
            return found
        self._known = _walk(self._root)
        found = self._known.get(namespace)
        if found is None:
            self._unknown.add(namespace)
        return found


def _walk(root: type) -> dict[str, type]:
    found: dict[str, type] = {}
    stack: list[type] = list(reversed(type.__subclasses__(root)))
    seen: set[int] = set()
    order: list[type] = []
    while stack:
        cls = stack.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        order.append(cls)
        stack.extend(reversed(type.__subclasses__(cls)))
    # the last one defined wins: classes are numbered by creation through their options
    for cls in sorted(order, key=_creation_order):
        options = getattr(cls, "__record_options__", None)
        if options is not None and not options.abstract:
            found[options.namespace] = cls
    return found


def _creation_order(cls: type) -> int:
    order: int = getattr(cls, "__record_serial__", 0)  # perf_counter_ns at definition
    return order
