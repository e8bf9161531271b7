"""The top room: ``App`` (declarations and the start/stop order), the worker runner,
the web endpoint and logging (docs/architecture.md)."""
