"""The codec stays sans-IO and self-contained, and survives kio's allocation hazard."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import streamlog.protocol

PACKAGE = Path(streamlog.protocol.__file__).parent

# Pure computation only: no sockets, files, processes, threads or event loops.
ALLOWED_TOP_LEVEL = {
    "__future__",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "functools",
    "io",  # BytesIO: kio's writers write to a file-like object in memory
    "kio",
    "struct",
    "types",
    "typing",
    "uuid",
}
# The one streamlog module the codec may import: the root of the package's exceptions,
# which imports nothing itself (tests/test_errors.py checks that).
ALLOWED_STREAMLOG = {"streamlog.errors"}


def test_protocol_imports_nothing_but_pure_modules_and_kio() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: inside streamlog.protocol
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name in ALLOWED_STREAMLOG:
                    continue
                assert name.split(".")[0] in ALLOWED_TOP_LEVEL, f"{path.name} imports {name}"
                assert not name.startswith("kio.records"), f"{path.name} imports {name}"


def test_hostile_array_counts_do_not_abort_the_process() -> None:
    # kio's native reader reserves memory for an array's declared count up front and a
    # failed allocation aborts the interpreter. Run the attack in a child process whose
    # address space is capped, so that a regression shows as a failed test rather than a
    # dead test run.
    script = textwrap.dedent(
        """
        import resource, struct
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from streamlog.protocol import MalformedRequestError, decode_request

        def frame(api_key, version, body, flexible):
            header = struct.pack(">hhih", api_key, version, 1, -1)
            return header + (b"\\x00" if flexible else b"") + body

        attacks = [
            frame(37, 2, b"\\xb6\\xf9\\xad\\x88\\x21", True),   # CreatePartitions: 2**33 topics
            frame(15, 5, b"\\xff\\xff\\xff\\xff\\x0f", True),   # DescribeGroups: 2**32 groups
            frame(3, 0, b"\\x7f\\xff\\xff\\xff", False),       # Metadata: 2**31-1 topics
            frame(15, 0, b"\\x7f\\xff\\xff\\xff", False),      # DescribeGroups: 2**31-1
        ]
        for attack in attacks:
            try:
                decode_request(attack)
            except MalformedRequestError as e:
                print("rejected:", e)
            else:
                raise SystemExit("accepted a hostile frame")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("rejected:") == 4
    assert "elements in" in result.stdout
