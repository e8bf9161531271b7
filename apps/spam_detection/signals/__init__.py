"""One module per spam signal. Each is a pure function of a JSON-able state and an event,
so the rules can be checked without a worker and the state kept in a changelogged table."""
