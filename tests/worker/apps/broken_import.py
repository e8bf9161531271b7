"""An app whose module cannot be imported: a dependency is missing."""

import streamlog_test_no_such_dependency  # noqa: F401

from streamlog import App

app = App("broken")
