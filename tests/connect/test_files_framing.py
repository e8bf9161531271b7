"""The record framer against a reference: any file cut into any chunks gives the same
records at the same offsets as splitting the whole file at once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamlog.connect.files.framing import Framed, RecordFramer

MAX = 40


def reference(data: bytes, *, quoted: bool, final: bool) -> list[Framed]:
    """Records of a whole file, the slow obvious way."""
    out: list[Framed] = []
    start = 0
    group: list[bytes] = []
    group_start = 0
    pos = 0
    for line in data.split(b"\n")[:-1]:
        end = pos + len(line) + 1
        if quoted and (group or line.count(b'"') % 2):
            if not group:
                group_start = pos
            group.append(line)
            size = sum(len(x) + 1 for x in group)
            if size > MAX:
                out.append(Framed(None, group_start, end))
                group = []
            elif sum(x.count(b'"') for x in group) % 2 == 0:
                out.append(Framed(b"\n".join(group), group_start, end))
                group = []
        else:
            out.append(Framed(line if len(line) <= MAX else None, pos, end))
        pos = end
    start = pos
    if final:
        rest = data[start:]
        if group or rest:
            first = group_start if group else start
            joined = b"\n".join([*group, rest]) if group else rest
            out.append(Framed(joined if len(joined) <= MAX else None, first, len(data)))
    return out


def frame(data: bytes, cuts: list[int], *, quoted: bool, final: bool) -> list[Framed]:
    framer = RecordFramer(0, quoted=quoted, max_record_bytes=MAX)
    out: list[Framed] = []
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in zip(bounds, bounds[1:], strict=False):
        framer.feed(data[a:b])
        while framer.pending:
            out.extend(framer.take(3))
    if final:
        last = framer.rest()
        if last is not None:
            out.append(last)
    return out


lines = st.lists(
    st.one_of(
        st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"x")),
        st.sampled_from([b'a,"b', b'c"', b'"', b'""', b"x" * 60, b""]),
    ),
    max_size=30,
)


flags = st.booleans()


@settings(max_examples=300, deadline=None)
@given(lines, st.lists(st.integers(0, 2000), max_size=8), flags, flags, flags)
def test_framer_matches_reference(parts, cuts, quoted, final, trailing):
    data = b"\n".join(parts) + (b"\n" if trailing else b"")
    assert frame(data, cuts, quoted=quoted, final=final) == reference(
        data, quoted=quoted, final=final
    )


def test_too_long_line_spanning_chunks_is_one_record_then_framing_resumes():
    data = b"ok\n" + b"y" * 500 + b"\nafter\n"
    got = frame(data, list(range(0, len(data), 7)), quoted=False, final=False)
    assert got == [Framed(b"ok", 0, 3), Framed(None, 3, 504), Framed(b"after", 504, 510)]
