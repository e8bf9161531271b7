"""Tables: ``Table`` (dict-like, partitioned, changelogged), ``GlobalTable`` and
``SetTable`` (docs/tables.md)."""
