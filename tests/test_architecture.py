"""The layers of docs/architecture.md ("Layers"), checked mechanically with import-linter
(the contract is in pyproject.toml), and the package's type and lint checks."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_contracts_hold() -> None:
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    out = subprocess.run(
        [lint, os.path.join(REPO, "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_importing_streamlog_has_no_side_effects() -> None:
    code = (
        "import sys, threading; before = set(sys.modules); import streamlog; "
        "print(threading.active_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def _tool(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def test_mypy_passes_on_the_package_and_the_sample_apps() -> None:
    out = subprocess.run(
        [_tool("mypy"), "streamlog", "apps"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout


def test_ruff_finds_nothing() -> None:
    out = subprocess.run(
        [_tool("ruff"), "check", "streamlog", "apps", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
