"""``faust.windows``: the window kinds."""

from streamlog.state.windows import HoppingWindow, SlidingWindow, TumblingWindow

__all__ = ["HoppingWindow", "SlidingWindow", "TumblingWindow"]
