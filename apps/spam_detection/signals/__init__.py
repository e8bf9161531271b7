"""One module per spam signal. Each declares its windowed tables on the app (a sliding
window for "N within W", a session window for "flagged once per episode") and decides, for
one event inside an agent, whether the signal starts a new episode. The state is the
framework's: changelogged, recovered after a restart, expired once out of every window."""
