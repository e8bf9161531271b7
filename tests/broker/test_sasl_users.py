"""The users file: its format, its errors, and the helper that makes verifiers."""

from __future__ import annotations

import base64
import io
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamlog.broker.users import (
    ScramCredential,
    UsersFileError,
    UserStore,
    load_users,
    parse_users,
)
from streamlog.broker.users.cli import main

RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
# RFC 7677's user "user" with password "pencil", as PostgreSQL would store it.
PENCIL_VERIFIER = (
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
)


def test_a_hand_written_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(
        "# who may connect\n"
        "\n"
        "alice:correct horse battery staple\n"
        "   # an indented comment\n"
        f"user:{PENCIL_VERIFIER}\n"
        "carol:pass:with:colons\n"
        "dave:pässwörd\r\n",
        encoding="utf-8",
    )
    users = load_users(path)
    assert sorted(users) == ["alice", "carol", "dave", "user"]
    assert users["alice"].check_password(b"correct horse battery staple")
    assert not users["alice"].check_password(b"correct horse battery")
    assert users["carol"].check_password(b"pass:with:colons")
    assert users["dave"].check_password("pässwörd".encode())
    assert users["user"] == ScramCredential.from_password("pencil", salt=RFC_SALT)
    assert users["user"].check_password(b"pencil")


def test_passwords_become_scram_credentials_with_fresh_salts() -> None:
    users = parse_users("a:same\nb:same\n")
    a, b = users["a"], users["b"]
    assert a.iterations == b.iterations == 4096
    assert len(a.salt) >= 16 and a.salt != b.salt
    assert a.stored_key != b.stored_key
    assert len(a.stored_key) == len(a.server_key) == 32
    # nothing of the password is kept, and the keys stay out of reprs and logs
    assert "same" not in repr(users) + repr(a)
    assert a.stored_key.hex() not in repr(a)


def test_verifier_round_trip() -> None:
    credential = ScramCredential.from_password("pencil", salt=RFC_SALT)
    assert credential.verifier() == PENCIL_VERIFIER
    assert ScramCredential.from_verifier(PENCIL_VERIFIER) == credential


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("alice\n", 1, "expected username:password"),
        ("# c\n\nalice:pw\n:pw\n", 4, "empty username"),
        ("alice:\n", 1, "empty password"),
        ("alice:pw\nbob:x\nalice:other\n", 3, "already defined on line 1"),
        (" alice:pw\n", 1, "leading or trailing whitespace"),
        ("alice:pw \n", 1, "leading or trailing whitespace"),
        ("al\x01ice:pw\n", 1, "control character"),
        ("alice:p\x00w\n", 1, "NUL"),
        ("alice:SCRAM-SHA-256$4096:abc\n", 1, "expected SCRAM-SHA-256$"),
        ("alice:" + PENCIL_VERIFIER.replace("4096", "1000") + "\n", 1, "iterations 1000"),
        ("alice:" + PENCIL_VERIFIER.replace("4096", "99999") + "\n", 1, "iterations 99999"),
        ("alice:" + PENCIL_VERIFIER.replace("4096", "x") + "\n", 1, "not a number"),
        ("alice:" + PENCIL_VERIFIER.replace("W22Z", "W2!Z") + "\n", 1, "salt is not valid"),
        ("alice:" + PENCIL_VERIFIER.replace("WG5d", "WG%d") + "\n", 1, "StoredKey is not"),
        ("alice:" + PENCIL_VERIFIER[:-8] + "\n", 1, "ServerKey"),
        (
            "alice:" + PENCIL_VERIFIER.replace("$4096:W22ZaJ0SNY7soEsUEjb6gQ==", "$4096:") + "\n",
            1,
            "salt is empty",
        ),
        ("alice:" + PENCIL_VERIFIER + "$extra\n", 1, "expected SCRAM-SHA-256$"),
        ("", None, "defines no user"),
        ("# only comments\n\n", None, "defines no user"),
    ],
)
def test_malformed_files_name_the_line(text: str, line: int | None, problem: str) -> None:
    with pytest.raises(UsersFileError) as info:
        parse_users(text, source="users.txt")
    assert info.value.line == line
    assert problem in str(info.value)
    where = "users.txt" if line is None else f"users.txt, line {line}"
    assert str(info.value).startswith(f"users file {where}: ")


def test_errors_do_not_echo_passwords() -> None:
    with pytest.raises(UsersFileError) as info:
        parse_users("alice:hunter2 \n")
    assert "hunter2" not in str(info.value)


def test_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes(b"alice:pw\nbob:\xff\xfe\n")
    with pytest.raises(UsersFileError, match=r"line 2: not valid UTF-8"):
        load_users(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="cannot read it") as info:
        load_users(tmp_path / "nope")
    assert isinstance(info.value.__cause__, OSError)
    assert isinstance(info.value, ValueError)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes("alice:pw\n".encode("utf-8-sig"))
    assert list(load_users(path)) == ["alice"]


def test_mock_credentials_are_stable_per_store_and_name() -> None:
    store = UserStore.from_passwords({"alice": "pw"})
    assert store.get("mallory") is None
    assert store.mock_credential("mallory") == store.mock_credential("mallory")
    assert store.mock_credential("mallory").salt != store.mock_credential("trudy").salt
    other = UserStore.from_passwords({"alice": "pw"})
    assert other.mock_credential("mallory").salt != store.mock_credential("mallory").salt


# --- python -m streamlog.broker.users ----------------------------------------------------


def test_hash_command_output_is_a_valid_users_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    assert main(["hash", "alice"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("alice:SCRAM-SHA-256$4096:")
    assert "s3cret" not in line
    users = parse_users(line + "\n")
    assert users["alice"].check_password(b"s3cret")


def test_hash_command_bare_verifier(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("pencil\n"))
    assert main(["hash", "--iterations", "8192"]) == 0
    verifier = capsys.readouterr().out.strip()
    credential = ScramCredential.from_verifier(verifier)
    assert credential.iterations == 8192 and credential.check_password(b"pencil")


def test_hash_command_refuses_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("pw\n"))
    with pytest.raises(SystemExit):
        main(["hash", "--iterations", "10"])
    with pytest.raises(SystemExit):
        main(["hash", "a:b"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    with pytest.raises(SystemExit):
        main(["hash"])


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    good.write_text("alice:pw\nbob:pw\n")
    assert main(["check", str(good)]) == 0
    assert "2 user(s): alice, bob" in capsys.readouterr().out
    bad = tmp_path / "bad"
    bad.write_text("alice:pw\nbob\n")
    assert main(["check", str(bad)]) == 1
    assert "line 2" in capsys.readouterr().err


def test_runs_as_a_module(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streamlog.broker.users", "hash", "alice"],
        input="pencil\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert parse_users(out.stdout)["alice"].check_password(b"pencil")


def test_runs_as_a_module_without_a_runtime_warning(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice:pw\n")
    out = subprocess.run(
        [sys.executable, "-W", "error", "-m", "streamlog.broker.users", "check", str(users)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "1 user(s): alice\n", "")


def test_end_of_stdin_instead_of_a_password_is_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streamlog.broker.users", "hash", "alice"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        "python -m streamlog.broker.users: no password given (stdin ended before a password line)\n"
    )


def _at_the_password_prompt() -> tuple[subprocess.Popen[bytes], int, bytes]:
    """``hash`` on a terminal (a pty, in a new session so that getpass uses it as stdin),
    once it shows its prompt; returns the process, the terminal's master side and the
    stderr read so far."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlog.broker.users", "hash", "alice"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    os.close(slave)
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 30
    while b"Password: " not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no prompt, only {seen!r}"
        if select.select([proc.stderr], [], [], left)[0]:
            chunk = os.read(proc.stderr.fileno(), 1024)
            assert chunk, f"stderr closed after {seen!r}"
            seen += chunk
    return proc, master, seen


@pytest.mark.parametrize("key", ["ctrl-d", "ctrl-c"])
def test_ctrl_d_or_ctrl_c_at_the_prompt_is_one_line_and_no_traceback(key: str) -> None:
    proc, master, prompt = _at_the_password_prompt()
    try:
        if key == "ctrl-d":
            os.write(master, b"\x04")  # the terminal's EOF character: read() returns 0
        else:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert out == b""
    assert b"Traceback" not in err
    lines = (prompt + err).decode().split("Password: ", 1)[1].splitlines()
    if key == "ctrl-d":
        assert proc.returncode == 1
        assert lines == [
            "",
            "python -m streamlog.broker.users: no password given "
            "(end of input at the password prompt)",
        ]
    else:
        assert proc.returncode == 130
        assert lines == ["", "python -m streamlog.broker.users: interrupted, no verifier made"]
