"""The users file of ``streamlog broker --users-file``: who may connect, as SCRAM credentials.

File format (UTF-8, one user per line)::

    # comments and blank lines are ignored
    alice:correct horse battery staple
    bob:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=

Each line is ``username:secret``, split at the first colon. The secret is either the
password itself (everything after the colon, exactly) or a SCRAM-SHA-256 verifier in
PostgreSQL's notation, ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``
(base64), made by ``python -m streamlog.broker.users hash``, so that the file need not
hold passwords. A secret that starts with ``SCRAM-SHA-256$`` is always read as a verifier.

Whatever the file holds, only SCRAM credentials are kept (RFC 5802 §3, RFC 7677): a
password is turned into (salt, iterations, StoredKey, ServerKey) for SCRAM-SHA-256 and for
SCRAM-SHA-512 as the line is read, and dropped. A verifier line gives its user
SCRAM-SHA-256 only. The SCRAM-SHA-256 credentials also verify PLAIN logins, by deriving
the StoredKey from the password sent and comparing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamlog.broker.errors import UsersFileError

__all__ = [
    "SCRAM_MECHANISMS",
    "DEFAULT_ITERATIONS",
    "MAX_ITERATIONS",
    "MIN_ITERATIONS",
    "ScramCredential",
    "UserStore",
    "UsersFileError",
    "load_users",
    "parse_users",
]

VERIFIER_PREFIX = "SCRAM-SHA-256$"
#: SCRAM mechanism -> the hash it is built on
SCRAM_MECHANISMS: dict[str, str] = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_DEFAULT_MECHANISM = "SCRAM-SHA-256"
DEFAULT_ITERATIONS = 4096
# Kafka's bounds for SCRAM-SHA-256 iterations (ScramMechanism.minIterations/maxIterations);
# RFC 7677 asks for at least 4096, and some clients refuse much larger counts.
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
_SALT_BYTES = 16
_KEY_BYTES = 32  # SHA-256


def _hmac(key: bytes, message: bytes, hash_name: str = "sha256") -> bytes:
    return hmac.digest(key, message, hash_name)


def salted_password(
    password: bytes, salt: bytes, iterations: int, hash_name: str = "sha256"
) -> bytes:
    """``Hi(Normalize(password), salt, i)`` of RFC 5802, which is PBKDF2-HMAC of the
    mechanism's hash.

    The password is used as its UTF-8 bytes without SASLprep, as Kafka and its clients do.
    """
    return hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What a SCRAM server stores for a user (RFC 5802 §3): enough to verify a client's
    proof and to prove itself to the client, not enough to log in as the user.

    Invariants: ``salt`` is non-empty, ``MIN_ITERATIONS <= iterations <= MAX_ITERATIONS``
    for credentials read from a file, and both keys are the size of ``mechanism``'s hash
    (32 bytes for SCRAM-SHA-256, 64 for SCRAM-SHA-512).
    """

    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)
    mechanism: str = _DEFAULT_MECHANISM

    @property
    def hash_name(self) -> str:
        return SCRAM_MECHANISMS[self.mechanism]

    @classmethod
    def from_password(
        cls,
        password: str | bytes,
        *,
        salt: bytes | None = None,
        iterations: int = DEFAULT_ITERATIONS,
        mechanism: str = _DEFAULT_MECHANISM,
    ) -> ScramCredential:
        """Derive the ``mechanism`` credential of ``password``; a fresh random salt unless
        one is given."""
        if isinstance(password, str):
            password = password.encode("utf-8")
        if salt is None:
            salt = secrets.token_bytes(_SALT_BYTES)
        name = SCRAM_MECHANISMS[mechanism]
        salted = salted_password(password, salt, iterations, name)
        return cls(
            salt=salt,
            iterations=iterations,
            stored_key=hashlib.new(name, _hmac(salted, b"Client Key", name)).digest(),
            server_key=_hmac(salted, b"Server Key", name),
            mechanism=mechanism,
        )

    @classmethod
    def from_verifier(cls, text: str) -> ScramCredential:
        """Parse ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``.

        :raises ValueError: with a message saying what is wrong.
        """
        if not text.startswith(VERIFIER_PREFIX):
            raise ValueError(f"a verifier starts with {VERIFIER_PREFIX!r}")
        parts = text[len(VERIFIER_PREFIX) :].split("$")
        if len(parts) != 2 or parts[0].count(":") != 1 or parts[1].count(":") != 1:
            raise ValueError(
                f"expected {VERIFIER_PREFIX}<iterations>:<salt>$<StoredKey>:<ServerKey>"
            )
        iterations_text, salt_text = parts[0].split(":")
        stored_text, server_text = parts[1].split(":")
        if not iterations_text.isascii() or not iterations_text.isdigit():
            raise ValueError(f"iterations {iterations_text!r} is not a number")
        iterations = int(iterations_text)
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations {iterations} outside {MIN_ITERATIONS}..{MAX_ITERATIONS}")
        salt = _b64decode(salt_text, "salt")
        if not salt:
            raise ValueError("the salt is empty")
        stored_key = _b64decode(stored_text, "StoredKey")
        server_key = _b64decode(server_text, "ServerKey")
        for name, key in (("StoredKey", stored_key), ("ServerKey", server_key)):
            if len(key) != _KEY_BYTES:
                raise ValueError(f"{name} is {len(key)} bytes, expected {_KEY_BYTES}")
        return cls(salt=salt, iterations=iterations, stored_key=stored_key, server_key=server_key)

    def verifier(self) -> str:
        """This credential as a users-file secret (the inverse of ``from_verifier``;
        SCRAM-SHA-256 only)."""
        if self.mechanism != _DEFAULT_MECHANISM:
            raise ValueError(f"verifiers are SCRAM-SHA-256 only, not {self.mechanism}")
        b64 = _b64encode
        return (
            f"{VERIFIER_PREFIX}{self.iterations}:{b64(self.salt)}"
            f"${b64(self.stored_key)}:{b64(self.server_key)}"
        )

    def check_password(self, password: bytes) -> bool:
        """Whether ``password`` is this credential's password (for PLAIN); constant time
        in the comparison, and as slow as the iteration count makes it."""
        name = self.hash_name
        salted = salted_password(password, self.salt, self.iterations, name)
        stored_key = hashlib.new(name, _hmac(salted, b"Client Key", name)).digest()
        return hmac.compare_digest(stored_key, self.stored_key)


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{what} is not valid base64") from None


class UserStore(Mapping[str, ScramCredential]):
    """The users allowed to connect: a read-only mapping of username to SCRAM-SHA-256
    credential (PLAIN is checked against it), with each user's other SCRAM credentials
    beside it (``scram``).

    ``mock_credential`` gives a made-up credential for a name that is not here, the same
    one every time for the same name within this store's life, so that a SCRAM exchange
    for an unknown user looks exactly like one with a wrong password (RFC 5802 §9 asks
    servers not to reveal which names exist).
    """

    __slots__ = ("_credentials", "_others", "_mock_key")

    def __init__(
        self,
        credentials: Mapping[str, ScramCredential] | None = None,
        others: Mapping[str, Sequence[ScramCredential]] | None = None,
    ) -> None:
        """``others``: more credentials per user, for mechanisms other than the main
        credential's (SCRAM-SHA-512)."""
        self._credentials: dict[str, ScramCredential] = dict(credentials or {})
        self._others: dict[tuple[str, str], ScramCredential] = {
            (name, c.mechanism): c for name, creds in (others or {}).items() for c in creds
        }
        self._mock_key = secrets.token_bytes(32)

    @classmethod
    def from_passwords(
        cls, passwords: Mapping[str, str], *, iterations: int = DEFAULT_ITERATIONS
    ) -> UserStore:
        """A store for ``{username: password}`` (tests and embedding), every SCRAM
        mechanism included."""
        return cls(
            {
                name: ScramCredential.from_password(password, iterations=iterations)
                for name, password in passwords.items()
            },
            {
                name: _other_credentials(password, iterations)
                for name, password in passwords.items()
            },
        )

    def scram(self, username: str, mechanism: str) -> ScramCredential | None:
        """``username``'s credential for SCRAM ``mechanism``, or None."""
        main = self._credentials.get(username)
        if main is not None and main.mechanism == mechanism:
            return main
        return self._others.get((username, mechanism))

    def __getitem__(self, username: str) -> ScramCredential:
        return self._credentials[username]

    def __iter__(self) -> Iterator[str]:
        return iter(self._credentials)

    def __len__(self) -> int:
        return len(self._credentials)

    def __repr__(self) -> str:
        return f"UserStore({sorted(self._credentials)!r})"

    def mock_credential(
        self, username: str, mechanism: str = _DEFAULT_MECHANISM
    ) -> ScramCredential:
        name = SCRAM_MECHANISMS[mechanism]
        seed = _hmac(self._mock_key, username.encode("utf-8", "surrogatepass"))
        return ScramCredential(
            salt=_hmac(seed, b"salt")[:_SALT_BYTES],
            iterations=DEFAULT_ITERATIONS,
            stored_key=_hmac(seed, b"stored", name),
            server_key=_hmac(seed, b"server", name),
            mechanism=mechanism,
        )


def load_users(path: str | Path) -> UserStore:
    """Read the users file at ``path``.

    :raises UsersFileError: the file cannot be read, is not UTF-8, has a malformed line, a
        duplicate user, or no user at all.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsersFileError(source, None, f"cannot read it: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UsersFileError(source, line, "not valid UTF-8") from None
    return parse_users(text, source=source)


def parse_users(text: str, *, source: str = "<string>") -> UserStore:
    """Parse the text of a users file (see the module docstring for the format).

    :raises UsersFileError: as ``load_users``.
    """
    credentials: dict[str, ScramCredential] = {}
    others: dict[str, list[ScramCredential]] = {}
    first_seen: dict[str, int] = {}
    # Only \n ends a line (not str.splitlines' \x85 or \u2028), so numbers match editors'.
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        username, sep, secret = raw.partition(":")
        if not sep:
            raise UsersFileError(source, number, "expected username:password or username:verifier")
        problem = username_problem(username)
        if problem is not None:
            raise UsersFileError(source, number, problem)
        if username in first_seen:
            raise UsersFileError(
                source, number, f"user {username!r} already defined on line {first_seen[username]}"
            )
        try:
            credentials[username] = _credential_of(secret)
            if not secret.startswith(VERIFIER_PREFIX):
                others[username] = _other_credentials(secret, DEFAULT_ITERATIONS)
        except ValueError as e:
            raise UsersFileError(source, number, f"user {username!r}: {e}") from None
        first_seen[username] = number
    if not credentials:
        raise UsersFileError(source, None, "defines no user; nobody could connect")
    return UserStore(credentials, others)


def _other_credentials(password: str, iterations: int) -> list[ScramCredential]:
    """A password's credentials for the SCRAM mechanisms but SCRAM-SHA-256."""
    return [
        ScramCredential.from_password(password, iterations=iterations, mechanism=mechanism)
        for mechanism in SCRAM_MECHANISMS
        if mechanism != _DEFAULT_MECHANISM
    ]


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be a user's name, or None (the file and the CLI share it)."""
    if not username:
        return "empty username"
    if username != username.strip():
        return f"username {username!r} has leading or trailing whitespace"
    if any(ord(c) < 0x20 or c == "\x7f" for c in username):
        return f"username {username!r} has a control character"
    return None


def _credential_of(secret: str) -> ScramCredential:
    if secret.startswith(VERIFIER_PREFIX):
        return ScramCredential.from_verifier(secret)
    if not secret:
        raise ValueError("empty password")
    if secret != secret.strip():
        # Invisible, and usually a mistake when editing by hand; a verifier can still
        # carry such a password.
        raise ValueError(
            "password has leading or trailing whitespace "
            "(use a verifier from 'python -m streamlog.broker.users hash' if intended)"
        )
    if "\x00" in secret:
        raise ValueError("password contains NUL, which SASL/PLAIN cannot carry")
    return ScramCredential.from_password(secret)
