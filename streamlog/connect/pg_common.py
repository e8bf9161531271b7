"""What both PostgreSQL connectors need: psycopg, imported only when one starts (it is
the optional ``postgres`` extra), and the line between errors that may pass (retry) and
errors that will not."""

from __future__ import annotations

from typing import Any

from streamlog.connect.errors import ConnectorConfigError

__all__ = ["psycopg_module", "is_transient"]


def psycopg_module() -> Any:
    """psycopg 3, or a clear error naming the extra to install."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the install
        raise ConnectorConfigError(
            "the PostgreSQL connectors need psycopg: pip install 'streamlog[postgres]'"
        ) from None
    return psycopg


def is_transient(error: BaseException) -> bool:
    """A connection lost or refused, a server shutting down or in recovery, a
    serialization failure: it may pass, so the work is retried rather than refused."""
    psycopg = psycopg_module()
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    state = getattr(getattr(error, "diag", None), "sqlstate", None) or ""
    # 08: connection exception; 57P: operator intervention (admin shutdown, cannot
    # connect now); 53: insufficient resources (disk full, too many connections);
    # 40001/40P01: serialization failure, deadlock; 55P03: lock_timeout reached
    return state.startswith(("08", "57P", "53")) or state in ("40001", "40P01", "55P03")
