"""The topology DSL (``@app.map/filter/aggregate/join``), the graph of an app and its
rendering, and the start-time checks that read it (docs/topology.md)."""
