"""Reading a connector's config table (``streamlog connect``'s TOML) key by key.

A config file is typed by hand: a misspelt key silently ignored would run a connector
with a default the user did not want, so every key is taken by name, checked for its
type, and whatever is left at the end is refused, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamlog.connect.errors import ConnectorConfigError

__all__ = ["ConfigKeys"]

_MISSING: Any = object()


class ConfigKeys:
    """The keys of one connector's table, taken one at a time (``take``), then ``done``."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self._name = name
        self._left = dict(config)

    def take(
        self,
        key: str,
        kinds: type | tuple[type, ...],
        default: Any = _MISSING,
    ) -> Any:
        """The value of ``key`` (``default`` when absent; required without a default),
        refused unless it is one of ``kinds`` (bool is not taken for a number)."""
        if key not in self._left:
            if default is _MISSING:
                raise ConnectorConfigError(f"connector {self._name!r}: {key} is required")
            return default
        value = self._left.pop(key)
        wanted = kinds if isinstance(kinds, tuple) else (kinds,)
        if (isinstance(value, bool) and bool not in wanted) or not isinstance(value, wanted):
            names = " or ".join(k.__name__ for k in wanted)
            raise ConnectorConfigError(
                f"connector {self._name!r}: {key} = {value!r} is not a {names}"
            )
        return value

    def done(self) -> None:
        """Refuse the keys nobody took."""
        if self._left:
            raise ConnectorConfigError(
                f"connector {self._name!r}: unknown key(s) {', '.join(sorted(self._left))}"
            )
