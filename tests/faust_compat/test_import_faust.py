"""``import faust`` without faust-streaming: ``streamlog.faust.install()`` makes the name
``faust`` import streamlog's namespace, never over a real faust. Each check runs in a new
interpreter, so that this process's ``sys.modules`` stays as it was."""

from __future__ import annotations

import sys
import textwrap

from tests.broker.brokerproc import STREAMLOG

from .helpers import run


def python_code(code: str, **kwargs: object) -> list[str]:
    out = run(sys.executable, "-c", textwrap.dedent(code), **kwargs)  # type: ignore[arg-type]
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_install_makes_import_faust_streamlogs_namespace():
    lines = python_code(
        """
        import streamlog, streamlog.cli, streamlog.faust, streamlog.types
        from streamlog.cli.worker import Worker as StreamlogWorker
        print(streamlog.faust.install())
        import faust
        import faust.cli
        import faust.types
        import faust.windows
        import faust.web
        from faust import App, ChannelT, Record, Stream, StreamT, Table, Worker
        from faust.cli import AppCommand, argument, option
        from faust.types import AgentT, EventT, TableT
        print(faust is streamlog.faust, App is streamlog.App, Record is streamlog.Record)
        print(Stream is streamlog.Stream, Table is streamlog.Table, Worker is StreamlogWorker)
        print(StreamT is streamlog.types.StreamT, faust.types.StreamT is StreamT)
        print(ChannelT is faust.types.ChannelT, AgentT is streamlog.types.AgentT)
        print(AppCommand is streamlog.cli.AppCommand, option is streamlog.cli.option)
        print(faust.windows.TumblingWindow is streamlog.TumblingWindow)
        print(faust.current_event())
        print(len(faust.uuid()), faust.uuid() != faust.uuid())
        print(streamlog.faust.install())
        """
    )
    assert lines == [
        "True",
        "True True True",
        "True True True",
        "True True",
        "True True",
        "True True",
        "True",
        "None",
        "36 True",
        "True",
    ]


def test_install_never_shadows_an_importable_faust(tmp_path):
    # a module named faust that Python can import (faust-streaming, or the program's own)
    # stays what `import faust` imports
    (tmp_path / "faust.py").write_text("WHO = 'the real one'\n")
    lines = python_code(
        """
        import sys
        import streamlog.faust
        print(streamlog.faust.install())
        import faust
        print(faust.WHO, faust is streamlog.faust)
        """,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert lines == ["False", "the real one False"]


def test_a_program_of_the_real_faust_is_named_as_such(tmp_path):
    # with faust-streaming installed, `import faust` in the program is the real one: the
    # worker says so instead of "no App found"
    real = tmp_path / "site" / "faust"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text(
        "class App:\n    def __init__(self, *a, **k):\n        pass\n"
    )
    (tmp_path / "prog.py").write_text("import faust\n\napp = faust.App('prog')\n")
    out = run(
        STREAMLOG,
        "agents",
        "prog.py",
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site")},
    )
    assert out.returncode == 1
    assert out.stderr == (
        "Error: no streamlog.App found in prog.py (it defines a faust.App: faust-streaming "
        "is installed, so 'import faust' imports it; uninstall it to run the program with "
        "streamlog, or write 'import streamlog as faust')\n"
    )


def test_python_runs_a_faust_program_only_through_streamlog(tmp_path):
    # `python prog.py` cannot import faust (none is installed); `python -m streamlog.faust
    # prog.py` runs it unchanged
    (tmp_path / "prog.py").write_text(
        "import faust\n"
        "from faust.cli import option\n\n"
        "app = faust.App('prog', broker='memory://')\n\n\n"
        "@app.command(option('--n', type=int, default=2))\n"
        "async def hello(self, n: int) -> None:\n"
        "    print(' '.join(['hello'] * n))\n\n\n"
        "if __name__ == '__main__':\n"
        "    app.main()\n"
    )
    plain = run(sys.executable, "prog.py", "hello", cwd=tmp_path)
    assert plain.returncode == 1
    assert "ModuleNotFoundError: No module named 'faust'" in plain.stderr
    out = run(sys.executable, "-m", "streamlog.faust", "prog.py", "hello", "--n", "3", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "hello hello hello\n", "")
    out = run(sys.executable, "-m", "streamlog.faust", "-A", "prog", "hello", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "hello hello\n", "")
    out = run(STREAMLOG, "prog.py", "hello", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "hello hello\n", "")
    out = run(sys.executable, "-m", "streamlog.faust", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: python -m streamlog.faust PROGRAM.py [ARGS]...")


def test_a_program_ported_by_import_streamlog_as_faust_finds_faust_s_names():
    # ``import streamlog as faust``: every name of the faust namespace a program uses is
    # on streamlog itself (install is the namespace's own; faust.worker is a module there)
    import uuid

    import streamlog
    import streamlog.faust

    names = set(streamlog.faust.__all__) - {"install", "worker", "Command", "AppCommand"}
    missing = sorted(n for n in names if not hasattr(streamlog, n))
    assert missing == []
    made = streamlog.uuid()
    assert str(uuid.UUID(made)) == made and made != streamlog.uuid()
    assert streamlog.cli.option is streamlog.faust.cli.option
    assert streamlog.windows.TumblingWindow is streamlog.TumblingWindow
