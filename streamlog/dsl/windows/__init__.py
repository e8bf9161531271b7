"""Windowed tables: the API (``table.py``), the per-event engine, closing and expiry,
the due queues and the window kinds (docs/tables.md, docs/architecture.md)."""
