"""``python -m streamlog.broker.users``: make a SCRAM verifier, check a users file.

It lives apart from the users file's parser (the package ``__init__``) because the broker
imports that parser: run as ``-m``, a module already imported by its own package would be
executed a second time as ``__main__`` (runpy's RuntimeWarning). ``__main__.py`` only calls
``main``.

A password is asked for twice on a terminal, or read as one line from stdin otherwise.
Ctrl-D (end of input) or Ctrl-C at the prompt is an answer, not a crash: one line on stderr
and exit status 1 (Ctrl-D) or 130 (Ctrl-C), like a shell's.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from streamlog.broker.errors import NoPasswordError, UsersFileError
from streamlog.broker.users import (
    DEFAULT_ITERATIONS,
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    ScramCredential,
    load_users,
    username_problem,
)

__all__ = ["main", "PROG"]

PROG = "python -m streamlog.broker.users"
EXIT_NO_PASSWORD = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


def _read_password() -> str:
    """The password: asked twice on a terminal, else the first line of stdin.

    :raises NoPasswordError: the input ended before a whole password line.
    """
    stdin = sys.stdin
    if stdin is None:  # fd 0 closed
        raise NoPasswordError("stdin is closed")
    if stdin.isatty():
        try:
            first = getpass.getpass("Password: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            raise NoPasswordError("end of input at the password prompt") from None
        if again != first:
            raise SystemExit(f"{PROG}: passwords differ")
        return first
    line = stdin.readline()
    if not line:
        raise NoPasswordError("stdin ended before a password line")
    return line.removesuffix("\n").removesuffix("\r")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Make and check users files for 'streamlog broker --users-file'.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    hash_cmd = commands.add_parser(
        "hash",
        help="print a SCRAM-SHA-256 verifier for a password (asked for, or read from stdin)",
    )
    hash_cmd.add_argument("username", nargs="?", help="print a whole 'username:verifier' line")
    hash_cmd.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    check_cmd = commands.add_parser("check", help="parse a users file and list its users")
    check_cmd.add_argument("path")
    args = parser.parse_args(argv)

    if args.command == "hash":
        if not MIN_ITERATIONS <= args.iterations <= MAX_ITERATIONS:
            parser.error(f"--iterations must be within {MIN_ITERATIONS}..{MAX_ITERATIONS}")
        if args.username is not None and (problem := username_problem(args.username)):
            parser.error(problem)
        if args.username is not None and ":" in args.username:
            parser.error("a username cannot contain ':'")
        # At a prompt the cursor is still on the prompt's line: end it first.
        end_prompt = "\n" if sys.stdin is not None and sys.stdin.isatty() else ""
        try:
            password = _read_password()
        except NoPasswordError as exc:
            print(f"{end_prompt}{PROG}: no password given ({exc})", file=sys.stderr)
            return EXIT_NO_PASSWORD
        except KeyboardInterrupt:
            print(f"{end_prompt}{PROG}: interrupted, no verifier made", file=sys.stderr)
            return EXIT_INTERRUPTED
        if not password:
            parser.error("empty password")
        verifier = ScramCredential.from_password(password, iterations=args.iterations).verifier()
        print(verifier if args.username is None else f"{args.username}:{verifier}")
        return 0
    try:
        store = load_users(args.path)
    except UsersFileError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"{len(store)} user(s): {', '.join(store)}")
    return 0
