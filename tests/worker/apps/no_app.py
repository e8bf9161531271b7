"""A module without an App (the loader must say so in one line)."""

VALUE = 1
