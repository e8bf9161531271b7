"""Joins: stream-table, windowed stream-stream and table-table (``api.join`` picks
one from its arguments; docs/joins.md)."""
