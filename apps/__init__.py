"""Sample applications built on streamlog (see docs/apps.md)."""
