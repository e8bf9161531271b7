"""kio, imported without the hypothesis hooks streamlog never uses.

kio (the wire schemas) registers hypothesis strategies for its constrained integer and
string types at import time whenever hypothesis is installed (``kio.static._phantom``).
That import pulls in hypothesis and with it much of pytest: about 0.3 s of CPU in every
process that speaks the protocol (each ``streamlog`` command, worker and broker) in an
environment that has hypothesis, a developer's or CI's. streamlog never uses those
strategies, so kio is first imported with hypothesis hidden, unless hypothesis is already
imported or the process is running tests (pytest imported): there kio's strategies may
be wanted, and kio is imported as usual.
"""

from __future__ import annotations

import sys

__all__: list[str] = []


def _import_kio_without_hypothesis() -> None:
    if "hypothesis" in sys.modules or "pytest" in sys.modules or "kio" in sys.modules:
        return
    sys.modules["hypothesis"] = None  # type: ignore[assignment]  # "import hypothesis" fails
    try:
        import kio.static._phantom  # noqa: F401 - the module that looks for hypothesis
    except ImportError:
        pass  # a kio laid out otherwise: imported as usual where it is used
    finally:
        if "hypothesis" in sys.modules and sys.modules["hypothesis"] is None:
            del sys.modules["hypothesis"]


_import_kio_without_hypothesis()
