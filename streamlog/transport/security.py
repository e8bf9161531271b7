"""How a client proves who it is to a Kafka cluster and protects the bytes: SASL and TLS.

``ClientSecurity`` holds the settings a managed Kafka cluster asks for, with Kafka's
meanings (``security.protocol`` follows from them: TLS comes from a ``kafka+ssl://`` URL,
SASL from a mechanism):

=================  =======================  ==========================================
URL                ``sasl_mechanism``       Kafka's ``security.protocol``
=================  =======================  ==========================================
``kafka://``       None                     ``PLAINTEXT``
``kafka://``       PLAIN, SCRAM-SHA-256/512 ``SASL_PLAINTEXT``
``kafka+ssl://``   None                     ``SSL`` (client certificate optional)
``kafka+ssl://``   PLAIN, SCRAM-SHA-256/512 ``SASL_SSL``
=================  =======================  ==========================================

TLS verifies the broker's certificate against ``ssl_cafile`` (else the system's CAs) and
checks that it names the host connected to, as Kafka's clients do by default
(``ssl.endpoint.identification.algorithm=https``); ``ssl_check_hostname=False`` turns
the name check off, which lets anyone holding any certificate from that CA pose as the
broker: it is insecure and meant for brokers whose certificates name no usable host.

TLS options with a ``kafka://`` URL are an error rather than silently unused: a user who
sets a CA file expects encryption. ``from_env`` reads the same settings from
``STREAMLOG_*`` variables, which is where the tools, the worker and ``open_transport``
take them from when not given explicitly.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from streamlog.transport.errors import SecurityConfigError

__all__ = [
    "ClientSecurity",
    "SASL_MECHANISMS",
    "SECURITY_ENV",
]

SASL_MECHANISMS: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: ``ClientSecurity`` field -> the environment variable it is read from.
SECURITY_ENV: dict[str, str] = {
    "sasl_mechanism": "STREAMLOG_SASL_MECHANISM",
    "sasl_username": "STREAMLOG_SASL_USERNAME",
    "sasl_password": "STREAMLOG_SASL_PASSWORD",
    "ssl_cafile": "STREAMLOG_SSL_CAFILE",
    "ssl_certfile": "STREAMLOG_SSL_CERTFILE",
    "ssl_keyfile": "STREAMLOG_SSL_KEYFILE",
    "ssl_key_password": "STREAMLOG_SSL_KEY_PASSWORD",
    "ssl_check_hostname": "STREAMLOG_SSL_CHECK_HOSTNAME",
}

_FALSE = ("0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    """SASL credentials and TLS files for the connections of one transport.

    ``tls`` is set from the broker URL (``kafka+ssl://``) by ``for_url``; the rest comes
    from the user. The password is kept out of ``repr`` so that it does not end up in
    logs or tracebacks.
    """

    tls: bool = False
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = None  # for an encrypted key file
    ssl_check_hostname: bool = True
    # A ready TLS context, used as is instead of the files above (Faust's credentials
    # carry one: ``SASLCredentials(ssl_context=...)``, ``SSLCredentials(context)``); it
    # means TLS whatever the URL, as it does in Faust.
    ssl_context_given: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("sasl_password", "ssl_key_password") and value is not None:
                value = "***"
            if value != f.default:
                shown.append(f"{f.name}={value!r}")
        return f"ClientSecurity({', '.join(shown)})"

    @property
    def protocol(self) -> str:
        """Kafka's ``security.protocol`` name for these settings."""
        if self.sasl_mechanism:
            return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        return "SSL" if self.tls else "PLAINTEXT"

    @property
    def uses_ssl_options(self) -> bool:
        files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password)
        return any(files) or (not self.ssl_check_hostname)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientSecurity:
        """The settings in ``STREAMLOG_SASL_*`` / ``STREAMLOG_SSL_*`` (see ``SECURITY_ENV``);
        empty variables count as unset.

        :raises SecurityConfigError: ``STREAMLOG_SSL_CHECK_HOSTNAME`` is not a boolean.
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(SECURITY_ENV[name]) or None

        check = get("ssl_check_hostname")
        return cls(
            sasl_mechanism=get("sasl_mechanism"),
            sasl_username=get("sasl_username"),
            sasl_password=get("sasl_password"),
            ssl_cafile=get("ssl_cafile"),
            ssl_certfile=get("ssl_certfile"),
            ssl_keyfile=get("ssl_keyfile"),
            ssl_key_password=get("ssl_key_password"),
            ssl_check_hostname=(
                True if check is None else parse_bool(check, SECURITY_ENV["ssl_check_hostname"])
            ),
        )

    def for_url(self, tls: bool) -> ClientSecurity:
        """These settings for a broker URL with (``kafka+ssl://``) or without TLS, checked.

        :raises SecurityConfigError: an unknown mechanism, a mechanism without username or
            password (or the reverse), TLS options on a URL without TLS, a key without a
            certificate.
        """
        tls = tls or self.ssl_context_given is not None
        result = replace(self, tls=tls, sasl_mechanism=_mechanism(self.sasl_mechanism))
        result.check()
        return result

    def check(self) -> None:
        """:raises SecurityConfigError: see ``for_url``."""
        if self.sasl_mechanism is not None:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise SecurityConfigError(
                    f"unsupported SASL mechanism {self.sasl_mechanism!r}; "
                    f"supported: {', '.join(SASL_MECHANISMS)}"
                )
            if not self.sasl_username or self.sasl_password is None:
                raise SecurityConfigError(
                    f"SASL {self.sasl_mechanism} needs a username and a password "
                    "(--sasl-username/--sasl-password, STREAMLOG_SASL_USERNAME/_PASSWORD)"
                )
        elif self.sasl_username or self.sasl_password is not None:
            raise SecurityConfigError(
                "a SASL username or password was given without a mechanism: set "
                "--sasl-mechanism (STREAMLOG_SASL_MECHANISM) to one of "
                + ", ".join(SASL_MECHANISMS)
            )
        if not self.tls and self.uses_ssl_options:
            raise SecurityConfigError(
                "TLS options (CA file, certificate, key, hostname check) were given for a "
                "broker URL without TLS: use kafka+ssl://HOST:PORT"
            )
        if self.ssl_context_given is not None and self.uses_ssl_options:
            raise SecurityConfigError(
                "a TLS context was given (broker_credentials) together with TLS files or "
                "options: give one or the other"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise SecurityConfigError("an SSL key file needs its certificate (--ssl-certfile)")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client's TLS context (None without TLS): TLS 1.2 or later, the broker's
        certificate verified, its host name checked unless turned off.

        :raises SecurityConfigError: a file that cannot be read or does not hold what it
            should (naming the file).
        """
        if not self.tls:
            return None
        if self.ssl_context_given is not None:
            return self.ssl_context_given
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ssl_cafile:
            try:
                context.load_verify_locations(cafile=self.ssl_cafile)
            except (OSError, ssl.SSLError) as e:
                raise SecurityConfigError(
                    f"cannot load the CA file {self.ssl_cafile}: {_reason(e)}"
                ) from None
        if self.ssl_certfile:
            try:
                # a password callable, so that OpenSSL never prompts at a terminal for
                # an encrypted key (a worker would hang): no password given is "" here
                password = self.ssl_key_password or ""
                context.load_cert_chain(
                    self.ssl_certfile, self.ssl_keyfile or None, password=lambda: password
                )
            except (OSError, ssl.SSLError) as e:
                reason = _reason(e)
                if _is_encrypted_key(self.ssl_keyfile or self.ssl_certfile):
                    reason = (
                        "the key is encrypted and --ssl-key-password (STREAMLOG_SSL_KEY_PASSWORD) "
                        + ("is wrong" if self.ssl_key_password else "was not given")
                    )
                raise SecurityConfigError(
                    f"cannot load the client certificate {self.ssl_certfile}"
                    + (f" with key {self.ssl_keyfile}" if self.ssl_keyfile else "")
                    + f": {reason}"
                ) from None
        context.check_hostname = self.ssl_check_hostname
        return context


def parse_bool(text: str, what: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SecurityConfigError(f"{what}: expected true or false, got {text!r}")


def _mechanism(name: str | None) -> str | None:
    """Mechanism names are case-insensitive on the command line; Kafka's are upper case."""
    return name.strip().upper() if name and name.strip() else None


def _is_encrypted_key(path: str) -> bool:
    """Whether a PEM file holds an encrypted private key (PKCS#8 or OpenSSL's old form)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return b"ENCRYPTED PRIVATE KEY" in head or b"Proc-Type: 4,ENCRYPTED" in head


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError) and e.reason:
        return str(e.reason)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
