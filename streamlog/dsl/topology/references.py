"""Which objects an agent's code reaches, read without running it: the tables, topics and
agents ``app.topology()`` draws as ``uses`` edges and the start-time co-partitioning
check compares (``copartitioning.py``).

A function's code, and that of the functions and comprehensions nested in it, is read
from its bytecode (``code_refs``): the global names it loads, the attribute names it uses
and the modules it imports, kept apart (``order.amount`` does not count a global named
``amount``). What it reaches: its closure variables, the globals it loads and the modules
it imports (when imported already: nothing is imported here); then, so that a send or a
table use inside a helper is seen, user code is followed:

* a user function reached (a module-level helper, a function held in a closure variable
  or an attribute) is read the same way;
* a bound method: its function, with its object in scope;
* a user module, class or object reached: its attributes that the reaching code names
  (``dispatcher.handle(...)`` names ``handle``; ``self.out.send(...)`` inside a method
  names ``out``). They are looked up with ``inspect.getattr_static``, so no property,
  descriptor or ``__getattr__`` of user code runs; a method or property found that way is
  read with the object in scope;
* the items of a list, tuple, set or dict (its values) reached, up to ``_MAX_ITEMS``.

*User code* is code outside streamlog's own package, the standard library and installed
packages (site-packages, dist-packages): those are never entered, though their objects
(a ``Table``, a ``Topic``) are returned when reached. Bounded: functions are read at most
``max_depth`` calls deep from the agent's function and at most ``max_objects`` objects are
returned, so an object graph of any size or shape costs a bounded walk.

A heuristic, over-approximating rather than missing: an attribute of a reached object
that shares a name the code uses on some object is counted, whether or not that code
path ever runs; a table reached only by a computed lookup (``app.tables[name]``,
``getattr(obj, name)``) or through an object built at run time is not seen.
"""

from __future__ import annotations

import dis
import functools
import importlib.util
import inspect
import os
import sys
import sysconfig
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["referenced_objects", "CodeRefs", "code_refs", "static_attribute"]

_MAX_ITEMS = 100  # items of one container followed
_MISSING = object()
_STREAMLOG_PACKAGE = __name__.split(".", 1)[0]
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"})
_ATTRIBUTE_OPS = frozenset(
    {"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR", "IMPORT_FROM", "LOAD_SUPER_ATTR"}
)


@dataclass(frozen=True, slots=True)
class CodeRefs:
    """What a code object names, read from its bytecode (nested code included).

    ``globals``: names loaded from its globals, in the order first met. ``attributes``:
    attribute names (``x.name``, ``from m import name``). ``imports``: modules its
    ``import`` statements name, as (name, level) with level > 0 for a relative import.
    Kept apart so that ``order.amount`` does not count a global named ``amount``.
    """

    globals: tuple[str, ...]
    attributes: frozenset[str]
    imports: tuple[tuple[str, int], ...]


@functools.lru_cache(maxsize=4096)
def code_refs(code: types.CodeType) -> CodeRefs:
    """The names ``code`` and the code objects nested in it refer to (``CodeRefs``).

    Cached: code objects are immutable, and the web router reads an agent's references
    on requests (``copartitioning.sources_of``)."""
    globals_: dict[str, None] = {}
    attributes: set[str] = set()
    imports: dict[tuple[str, int], None] = {}
    stack = [code]
    while stack:
        current = stack.pop(0)
        level = 0
        for instruction in dis.get_instructions(current):
            op = instruction.opname
            if op in _GLOBAL_OPS:
                globals_.setdefault(instruction.argval)
            elif op in _ATTRIBUTE_OPS:
                attributes.add(instruction.argval)
            elif op == "IMPORT_NAME":
                imports.setdefault((instruction.argval, level))
            elif op == "LOAD_CONST" and isinstance(instruction.argval, int):
                level = instruction.argval  # an import's level comes two constants before it
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return CodeRefs(tuple(globals_), frozenset(attributes), tuple(imports))


@functools.cache
def _library_roots() -> tuple[str, ...]:
    """Directories whose code is not the user's: streamlog's package and the stdlib and
    site directories of this interpreter (cached: they do not change while it runs)."""
    here = os.path.dirname(os.path.abspath(__file__))
    roots = {os.path.dirname(os.path.dirname(here))}  # streamlog/dsl/topology -> streamlog
    paths = sysconfig.get_paths()
    roots.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    return tuple(os.path.realpath(root) + os.sep for root in roots)


@functools.lru_cache(maxsize=4096)
def _is_library_file(filename: str) -> bool:
    if filename.startswith("<"):  # "<frozen ...>" is the stdlib; "<string>" was exec'd
        return filename.startswith("<frozen")
    path = os.path.realpath(filename)
    parts = path.split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    return path.startswith(_library_roots())


def _is_library_module_name(name: object) -> bool:
    if not isinstance(name, str):
        return True
    top = name.split(".", 1)[0]
    return top == _STREAMLOG_PACKAGE or top in sys.stdlib_module_names or top == "builtins"


def _user_function(obj: Any) -> types.FunctionType | None:
    """``obj`` (unwrapped from decorators that keep ``__wrapped__``) when it is a Python
    function of user code. Only functions are unwrapped: ``hasattr(obj, "__wrapped__")``
    on another object could run its ``__getattr__``."""
    if not isinstance(obj, types.FunctionType):
        return None
    target = obj
    for _ in range(100):  # a __wrapped__ chain, perhaps a cycle
        inner = target.__dict__.get("__wrapped__")
        if not isinstance(inner, types.FunctionType):
            break
        target = inner
    if _is_library_module_name(target.__module__):
        return None
    return None if _is_library_file(target.__code__.co_filename) else target


def _is_user_module(module: types.ModuleType) -> bool:
    if _is_library_module_name(module.__name__):
        return False
    filename = getattr(module, "__file__", None)
    return isinstance(filename, str) and not _is_library_file(filename)


def _is_user_class(cls: type) -> bool:
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    return module is not None and _is_user_module(module)


class _Walk:
    """One bounded walk from an agent's function (see the module docstring)."""

    def __init__(self, max_depth: int, max_objects: int) -> None:
        self.max_depth = max_depth
        self.max_objects = max_objects
        self.found: list[Any] = []
        self._seen: set[int] = set()
        # (id(function), id(its object) or 0) already read; (id(object), name) looked up
        self._read: set[tuple[int, int]] = set()
        self._looked_up: set[tuple[int, str]] = set()
        # steps not taken yet (follow an object, read a function), breadth first, so what
        # fewer calls reach comes first; an object is followed once per set of names
        self._pending: deque[Callable[[], None]] = deque()
        self._queued: set[tuple[int, frozenset[str]]] = set()

    def run(self, fun: Any) -> list[Any]:
        target = fun
        try:
            target = inspect.unwrap(fun) if isinstance(fun, types.FunctionType) else fun
        except ValueError:  # a __wrapped__ cycle
            pass
        if isinstance(target, types.FunctionType):
            # the agent's own function is read wherever it lives
            self._read_function(target, None, 0)
        while self._pending and len(self.found) < self.max_objects:
            self._pending.popleft()()
        return self.found

    def _note(self, obj: Any, names: frozenset[str], depth: int) -> None:
        """Record ``obj`` as reached (once) and queue it to be followed from ``names``."""
        if id(obj) not in self._seen:
            if len(self.found) >= self.max_objects:
                return
            self._seen.add(id(obj))
            self.found.append(obj)  # also keeps it alive while its id is a key here
        if (id(obj), names) not in self._queued:
            self._queued.add((id(obj), names))
            self._pending.append(functools.partial(self._follow, obj, names, depth))

    def _read_later(self, fun: types.FunctionType, owner: Any, depth: int) -> None:
        self._pending.append(functools.partial(self._read_function, fun, owner, depth))

    def _read_function(self, fun: types.FunctionType, owner: Any, depth: int) -> None:
        key = (id(fun), 0 if owner is None else id(owner))
        if depth > self.max_depth or key in self._read:
            return
        self._read.add(key)
        refs = code_refs(fun.__code__)
        names = refs.attributes
        for cell in fun.__closure__ or ():
            try:
                self._note(cell.cell_contents, names, depth)
            except ValueError:  # an empty cell (a variable not bound yet)
                continue
        namespace = fun.__globals__
        for name in refs.globals:
            if name in namespace:
                self._note(namespace[name], names, depth)
        for name, level in refs.imports:
            module = _imported(name, level, namespace)
            if module is not None:
                self._note(module, names, depth)
        if owner is not None:
            self._look_up(owner, names, depth)

    def _follow(self, obj: Any, names: frozenset[str], depth: int) -> None:
        """Go on from ``obj``, reached from code whose names are ``names``."""
        if isinstance(obj, types.MethodType):
            function = _user_function(obj.__func__)
            if function is not None:
                self._read_later(function, obj.__self__, depth + 1)
            return
        if isinstance(obj, functools.partial):
            for part in (obj.func, *obj.args, *obj.keywords.values()):
                self._note(part, names, depth)
            return
        if isinstance(obj, list | tuple | set | frozenset | dict):
            items = obj.values() if isinstance(obj, dict) else obj
            for count, item in enumerate(items):
                if count >= _MAX_ITEMS:
                    break
                self._note(item, names, depth)
            return
        if callable(obj) and not isinstance(obj, type):
            function = _user_function(obj)
            if function is not None:
                self._read_later(function, None, depth + 1)
                return
        if isinstance(obj, types.ModuleType):
            if _is_user_module(obj):
                self._look_up(obj, names, depth)
        elif isinstance(obj, type):
            if _is_user_class(obj):
                self._look_up(obj, names, depth)
        elif _is_user_class(type(obj)):
            self._look_up(obj, names, depth)

    def _look_up(self, obj: Any, names: frozenset[str], depth: int) -> None:
        """Follow the attributes of user module, class or object ``obj`` that ``names``
        holds, without running any of its code."""
        is_instance = not isinstance(obj, types.ModuleType | type)
        for name in sorted(names):
            if (id(obj), name) in self._looked_up:
                continue
            self._looked_up.add((id(obj), name))
            attr = static_attribute(obj, name, _MISSING)
            if attr is _MISSING:
                continue
            if isinstance(attr, staticmethod):
                function = _user_function(attr.__func__)
                if function is not None:
                    self._read_later(function, None, depth + 1)
                continue
            if isinstance(attr, classmethod):
                function = _user_function(attr.__func__)
                if function is not None:
                    owner = obj if isinstance(obj, type) else type(obj)
                    self._read_later(function, owner, depth + 1)
                continue
            elif isinstance(attr, property):
                function = _user_function(attr.fget)
                if function is not None and is_instance:
                    self._read_later(function, obj, depth + 1)
                continue
            function = _user_function(attr) if isinstance(attr, types.FunctionType) else None
            if function is not None and is_instance and not _in_instance_dict(obj, name):
                self._read_later(function, obj, depth + 1)  # a method: read bound
            else:
                self._note(attr, names, depth)


def _imported(name: str, level: int, namespace: dict[str, Any]) -> types.ModuleType | None:
    """The module an ``import`` in code with globals ``namespace`` names, when it is
    imported already (nothing is imported here)."""
    if level > 0:
        package = namespace.get("__package__")
        if not isinstance(package, str) or not package:
            return None
        try:
            name = importlib.util.resolve_name("." * level + name, package)
        except ImportError:
            return None
    return sys.modules.get(name)


def static_attribute(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` without running user code (``inspect.getattr_static``, with a slot's
    value read from its member descriptor): a property, ``__getattr__`` or other
    descriptor of user code is not run (the descriptor itself comes back)."""
    try:
        attr = inspect.getattr_static(obj, name)
    except AttributeError:
        return default
    if isinstance(attr, types.MemberDescriptorType) and not isinstance(obj, type):
        try:
            return attr.__get__(obj, type(obj))
        except AttributeError:  # a slot never set
            return default
    return attr


def _in_instance_dict(obj: Any, name: str) -> bool:
    """Whether ``name`` is set on ``obj`` itself (a function stored there is no method)."""
    try:
        return name in object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return False


def referenced_objects(fun: Any, *, max_depth: int = 5, max_objects: int = 1000) -> list[Any]:
    """The objects ``fun``'s code reaches, following user code (module docstring), in the
    order met: first its own closure variables and globals, then what helpers reach."""
    return _Walk(max_depth, max_objects).run(fun)
