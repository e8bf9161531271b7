"""Agent names (and so the topics of agents declared without one) do not depend on how a
program is started: ``python app.py``, ``python -m pkg.app``, ``streamlog ... pkg/app.py``
and ``streamlog ... pkg.app`` all name the module as it is imported."""

from __future__ import annotations

import functools
import subprocess
import sys

from streamlog.dsl.agents.naming import callable_name, module_name_for_file
from tests.worker.workerproc import run_cli

PROGRAM = """\\
import streamlog

app = streamlog.App("naming", broker="memory://")


@app.agent()
async def count(stream):
    async for _ in stream:
        pass


if __name__ == "__main__":
    app.main()
"""


def python(*args: str, cwd: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def agents(lines: list[str]) -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in lines[1:]]  # type: ignore[misc]


def test_the_same_agent_names_however_the_program_starts(tmp_path):
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text(PROGRAM)
    (tmp_path / "loose.py").write_text(PROGRAM)
    in_package = [("shop.orders.count", "naming-shop.orders.count")]
    assert agents(python("shop/orders.py", "agents", cwd=tmp_path)) == in_package
    assert agents(python("-m", "shop.orders", "agents", cwd=tmp_path)) == in_package
    assert agents(run_cli("agents", "shop/orders.py", cwd=tmp_path).stdout.splitlines()) == (
        in_package
    )
    assert agents(run_cli("agents", "shop.orders", cwd=tmp_path).stdout.splitlines()) == (
        in_package
    )
    # from inside the package too: the name comes from the file, not the current directory
    assert agents(python("orders.py", "agents", cwd=package)) == in_package
    loose = [("loose.count", "naming-loose.count")]
    assert agents(python("loose.py", "agents", cwd=tmp_path)) == loose
    assert agents(run_cli("agents", "loose.py", cwd=tmp_path).stdout.splitlines()) == loose


def test_module_names_of_files_and_functions(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "__init__.py").write_text("")
    (tmp_path / "a" / "b" / "__init__.py").write_text("")
    assert module_name_for_file(str(tmp_path / "a" / "b" / "c.py")) == ("a.b.c", str(tmp_path))
    assert module_name_for_file(str(tmp_path / "d.py")) == ("d", str(tmp_path))

    def scale(factor: float, value: float) -> float:
        return factor * value

    here = f"{__name__}.test_module_names_of_files_and_functions.<locals>.scale"
    assert callable_name(scale) == here
    assert callable_name(functools.partial(functools.partial(scale, 2.0), 3.0)) == here
