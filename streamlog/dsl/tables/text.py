"""Tables as text for people: Faust's ``as_ansitable``."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ansitable"]


def ansitable(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows of text as a boxed table for people (``as_ansitable``)."""
    widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(len(head))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [title, line]
    out.append("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    out.append(line)
    for row in rows:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    out.append(line)
    return "\n".join(out)
