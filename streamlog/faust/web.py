"""``faust.web``: the web views' names (``View``, ``Request``, ``Response``...), from the
worker's web server module, ``streamlog.dsl.app.web``.

Only the names that module defines are exported: ``__all__`` lists them.
"""

from streamlog.dsl.app import web as _web

_NAMES = ("Blueprint", "Request", "Response", "View", "Web")

__all__ = [name for name in _NAMES if hasattr(_web, name)]

globals().update({name: getattr(_web, name) for name in __all__})
