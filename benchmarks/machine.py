"""What every benchmark prints first: the machine its figures were measured on."""

from __future__ import annotations

import os
import platform

__all__ = ["machine"]


def machine() -> str:
    """Cores, CPU model, Python version and kernel, on one line."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}; Python {platform.python_version()} "
        f"({platform.python_implementation()}); {platform.system()} {platform.release()}"
    )
