"""Every exception class streamlog defines derives from ``streamlog.errors.StreamlogError``,
through its layer's base, and lives in its layer's errors module; library code raises
them rather than asserting."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import streamlog
from streamlog.broker.errors import BrokerError
from streamlog.cli.errors import CliError
from streamlog.connect.errors import ConnectError
from streamlog.dsl.errors import StreamsError
from streamlog.errors import StreamlogError
from streamlog.log.errors import LogError
from streamlog.mirror.errors import MirrorError
from streamlog.protocol.errors import ProtocolError
from streamlog.serde.errors import SerdeError
from streamlog.state.errors import StateError
from streamlog.transport.errors import TransportError

LAYERS = {
    "streamlog.log": LogError,
    "streamlog.protocol": ProtocolError,
    "streamlog.transport": TransportError,
    "streamlog.broker": BrokerError,
    "streamlog.serde": SerdeError,
    "streamlog.state": StateError,
    "streamlog.cli": CliError,
    "streamlog.dsl": StreamsError,
    "streamlog.mirror": MirrorError,
    "streamlog.connect": ConnectError,
}


def _exception_classes(package: str) -> list[tuple[str, type[BaseException]]]:
    """(module, class) of every exception class defined in ``package``'s modules, private
    control-flow ones (a leading underscore: raised and caught in one module) and warnings
    (which are not raised as errors) left out."""
    root = importlib.import_module(package)
    found = []
    modules = [package] + [
        info.name for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
    ]
    for name in modules:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and not issubclass(value, Warning)
                and value.__module__ == name
                and not attr.startswith("_")
            ):
                found.append((name, value))
    return found


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_each_layers_exceptions_derive_from_its_base_and_the_root(package: str) -> None:
    base = LAYERS[package]
    assert issubclass(base, StreamlogError)
    classes = _exception_classes(package)
    assert base in [cls for _, cls in classes]
    for module, cls in classes:
        assert issubclass(cls, base), f"{module}.{cls.__name__} does not derive from {base}"
        assert module.endswith(".errors"), f"{cls.__name__} is defined in {module}"


def test_the_root_is_importable_from_the_lowest_layer() -> None:
    # streamlog.errors imports nothing of streamlog: the log engine can use it.
    source = inspect.getsource(importlib.import_module("streamlog.errors"))
    assert "import streamlog" not in source and "from streamlog" not in source
    assert streamlog.errors.StreamlogError is StreamlogError
    assert streamlog.StreamlogError is StreamlogError
    assert streamlog.dsl.errors.StreamlogError is StreamlogError


def test_library_code_checks_state_with_exceptions_not_asserts() -> None:
    # ``python -O`` strips asserts: a state check must raise the layer's error instead.
    root = Path(streamlog.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        found += [
            f"{path.relative_to(root)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Assert)
        ]
    assert found == []
