"""Agents, actors, streams, topics and channels, replies, timers and crontabs: the
parts an ``@app.agent`` is made of (docs/architecture.md)."""
