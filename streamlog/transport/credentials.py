"""Faust's credentials objects (``broker_credentials``), mapped to ``ClientSecurity``.

A Faust program says how to log in with ``App(..., broker_credentials=...)``: a
``SASLCredentials(username=, password=, mechanism=, ssl_context=)``, an
``SSLCredentials(context)`` (or a bare ``ssl.SSLContext``), a ``GSSAPICredentials`` or an
``OAuthCredentials``. The same names and arguments are here, so that such a program runs
unchanged; ``client_security`` turns them into the ``ClientSecurity`` the Kafka transport
uses. As in Faust, a TLS context in the credentials means TLS (``SASL_SSL`` or ``SSL``)
even on a ``kafka://`` URL. Kerberos (GSSAPI) and OAuth bearer tokens are not
implemented by streamlog's client: their objects can be made (the program imports), and
using them is a clear error.
"""

from __future__ import annotations

import ssl
from typing import Any

from streamlog.transport.errors import SecurityConfigError
from streamlog.transport.security import SASL_MECHANISMS, ClientSecurity

__all__ = [
    "Credentials",
    "GSSAPICredentials",
    "OAuthCredentials",
    "SASLCredentials",
    "SSLCredentials",
    "client_security",
]


class Credentials:
    """Base of the credentials objects (Faust's ``faust.auth.Credentials``)."""


class SASLCredentials(Credentials):
    """A SASL login: PLAIN (the default, as in Faust), SCRAM-SHA-256 or SCRAM-SHA-512;
    over TLS when ``ssl_context`` is given."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        mechanism: Any = None,
    ) -> None:
        self.username = username
        self.password = password
        self.ssl_context = ssl_context
        # a string, or an enum member whose value is the name (Faust's SASLMechanism)
        name = getattr(mechanism, "value", mechanism)
        self.mechanism: str = str(name).upper() if name is not None else "PLAIN"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: username={self.username}>"


class SSLCredentials(Credentials):
    """TLS with a given context, or one made from CA locations (verifying the broker)."""

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        *,
        purpose: ssl.Purpose | None = None,
        cafile: str | None = None,
        capath: str | None = None,
        cadata: str | None = None,
    ) -> None:
        if context is None:
            context = ssl.create_default_context(
                purpose or ssl.Purpose.SERVER_AUTH, cafile=cafile, capath=capath, cadata=cadata
            )
        self.context = context

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: context={self.context}>"


class GSSAPICredentials(Credentials):
    """Kerberos over SASL: accepted as an object, refused when used (see the module)."""

    def __init__(
        self,
        *,
        kerberos_service_name: str = "kafka",
        kerberos_domain_name: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        mechanism: Any = None,
    ) -> None:
        self.kerberos_service_name = kerberos_service_name
        self.kerberos_domain_name = kerberos_domain_name
        self.ssl_context = ssl_context
        self.mechanism = mechanism


class OAuthCredentials(Credentials):
    """OAuth bearer tokens over SASL: accepted as an object, refused when used."""

    def __init__(self, *, oauth_cb: Any, ssl_context: ssl.SSLContext | None = None) -> None:
        self.oauth_cb = oauth_cb
        self.ssl_context = ssl_context


def client_security(credentials: object) -> ClientSecurity:
    """The ``ClientSecurity`` for Faust-style ``credentials`` (see the module docstring).

    :raises SecurityConfigError: GSSAPI or OAuth credentials, a SASL mechanism streamlog
        does not implement, or an object that is not credentials.
    """
    if isinstance(credentials, ssl.SSLContext):
        return ClientSecurity(ssl_context_given=credentials)
    if isinstance(credentials, SSLCredentials):
        return ClientSecurity(ssl_context_given=credentials.context)
    if isinstance(credentials, SASLCredentials):
        if credentials.mechanism not in SASL_MECHANISMS:
            raise SecurityConfigError(
                f"broker_credentials: SASL mechanism {credentials.mechanism!r} is not "
                f"supported by streamlog's client (supported: {', '.join(SASL_MECHANISMS)})"
            )
        return ClientSecurity(
            sasl_mechanism=credentials.mechanism,
            sasl_username=credentials.username,
            sasl_password=credentials.password,
            ssl_context_given=credentials.ssl_context,
        )
    if isinstance(credentials, GSSAPICredentials):
        raise SecurityConfigError(
            "broker_credentials: GSSAPI (Kerberos) is not supported by streamlog's client; "
            f"supported SASL mechanisms: {', '.join(SASL_MECHANISMS)}"
        )
    if isinstance(credentials, OAuthCredentials):
        raise SecurityConfigError(
            "broker_credentials: OAUTHBEARER is not supported by streamlog's client; "
            f"supported SASL mechanisms: {', '.join(SASL_MECHANISMS)}"
        )
    raise SecurityConfigError(
        "broker_credentials must be SASLCredentials, SSLCredentials or an ssl.SSLContext, "
        f"not {type(credentials).__name__}"
    )
