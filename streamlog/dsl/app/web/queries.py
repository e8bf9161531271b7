"""Interactive queries: ``GET /tables/{table}/{key}``, a table key's value as JSON,
answered by the worker holding the key's partition.

The key is found as ``@app.table_route`` finds it (``Router.locate_table_key``); a worker
that does not hold it forwards the request with the same machinery (``forwarding.py``),
so any worker may be asked and all give the same answer, with ``owner`` naming the
holder. The answer::

    {"table": "word_counts", "key": "fox", "value": 3, "partition": 1,
     "owner": "http://127.0.0.1:6066"}

A windowed table answers the window containing a time, the app clock's now unless
``?window=`` gives epoch milliseconds or an ISO 8601 time (no zone: UTC), and adds
``"window": {"start": ms, "end": ms}`` (with hopping windows, the newest window
containing that time; ``"windows"`` lists every one). No default is applied: a key the
table does not hold answers 404, so "absent" and "0" are told apart.

Keys in the URL (percent-encoded as any path segment): a table whose key type is
``str`` takes the segment as is, ``int``/``float`` its number, ``bytes`` (or the raw
serializer) its UTF-8 bytes; any other table (JSON keys, Records) takes the key's JSON
text (``/tables/t/42``, ``/tables/t/%7B%22id%22%3A1%7D``), and for an untyped JSON table
a segment that is not JSON is the string itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamlog.dsl.app.web.errors import NotFound, SameNode, ServiceUnavailable, ValidationError
from streamlog.dsl.tables.kinds import GlobalTable
from streamlog.serde import SerdeError

if TYPE_CHECKING:
    from aiohttp.web import Request, StreamResponse

    from streamlog.dsl.app.app import App
    from streamlog.dsl.tables.table import Table

__all__ = ["TABLES_PATH", "decode_key", "parse_window_time", "answer_table_query"]

TABLES_PATH = "/tables/{name}/{key}"


def decode_key(table: Table, text: str) -> Any:
    """The table key a URL segment names (see the module docstring); ``ValidationError``
    (400) when it cannot be one."""
    schema = table.schema
    key_type = schema.key_type
    try:
        if key_type is str:
            return text
        if key_type is int:
            return int(text)
        if key_type is float:
            return float(text)
        if key_type is bytes or schema.key_serializer == "raw":
            return text.encode()
        raw = text.encode()
        if key_type is None:
            try:
                json.loads(raw)
            except ValueError:
                return text  # an untyped JSON table's string key, written bare
        key = schema.loads_key(raw)
    except (ValueError, SerdeError) as exc:
        raise ValidationError(
            f"key {text!r} cannot be decoded for table {table.name!r} "
            f"(key type {getattr(key_type, '__name__', key_type)!r}): {exc}"
        ) from None
    if key is None:
        raise ValidationError(f"key {text!r} of table {table.name!r} decodes to null")
    return key


def parse_window_time(text: str) -> int:
    """``?window=``: epoch milliseconds, or an ISO 8601 time (naive: UTC), as epoch ms."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"window={text!r} is neither epoch milliseconds nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def answer_table_query(app: App, own_url: str | None, request: Request) -> StreamResponse:
    """``GET /tables/{name}/{key}`` (module docstring)."""
    name = request.match_info["name"]
    table = app.tables.get(name)
    if table is None:
        known = ", ".join(sorted(app.tables)) or "none"
        raise NotFound(f"no table named {name!r} (tables: {known})")
    text = request.match_info["key"]
    key = decode_key(table, text)
    window_arg = request.query.get("window")
    if window_arg is not None and table.windowed is None:
        raise ValidationError(f"table {name!r} is not windowed: ?window= does not apply")
    at_ms = None if window_arg is None else parse_window_time(window_arg)
    router = app.router
    location = router.locate_table_key(name, key)
    try:
        return await router.forward(location, request)
    except SameNode:
        pass
    raw = table.key_bytes(key)
    number = location.partition
    if number is None or isinstance(table, GlobalTable):  # every partition is here
        number = table.locate(raw)
        if number is None:
            number = table.hash_partition(raw)
    if number not in table.active_partitions:
        raise ServiceUnavailable(
            f"{location.what} is held by this worker but is being recovered: try again"
        )
    body: dict[str, Any] = {
        "table": name,
        "key": key,
        "partition": number,
        "owner": own_url,
    }
    windowed = getattr(table, "windowed", None)
    if windowed is None:
        data = table.read_stored(number, raw)
        if data is None:
            raise NotFound(f"table {name!r} holds no key {key!r} (partition {number})")
        body["value"] = table.schema.loads_value(data)
        return app.web.json(body)
    t = windowed.wall_ms() if at_ms is None else at_ms
    found = windowed.windows_at(key, t, number)
    if not found:
        raise NotFound(
            f"table {name!r} holds no window of key {key!r} containing {t} "
            f"({_iso(t)}; partition {number})"
        )
    window, value = found[-1]
    body["value"] = value
    body["window"] = {"start": window.start, "end": window.end}
    body["time"] = t
    if len(found) > 1:
        body["windows"] = [{"start": w.start, "end": w.end, "value": v} for w, v in found]
    return app.web.json(body)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
