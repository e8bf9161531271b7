"""``faust.types``: the abstract type names (``StreamT``, ``ChannelT``...): exactly
``streamlog.types``'s, which this module re-exports."""

from streamlog.types import *  # noqa: F403 - the same names, under Faust's module name
from streamlog.types import __all__ as __all__
