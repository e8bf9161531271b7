"""Certificates for TLS tests, made with the machine's ``openssl`` command (no network).

``make_pki(directory)`` writes a test CA, a server certificate for 127.0.0.1 and
localhost, one for another host name only (to see the host name check refuse it), a
client certificate signed by the CA, and an unrelated CA nobody signed with. EC P-256
keys: quick to make. Valid for two days.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Pki", "make_pki", "HAVE_OPENSSL"]

HAVE_OPENSSL = shutil.which("openssl") is not None


@dataclass(frozen=True)
class Pki:
    ca: str  # the CA certificate clients trust
    server_cert: str  # for 127.0.0.1 and localhost
    server_key: str
    other_host_cert: str  # for broker.invalid only
    other_host_key: str
    client_cert: str
    client_key: str
    other_ca: str  # a CA that signed none of the above


def _run(*args: str, cwd: str) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{out.stderr}")


def _ca(directory: str, name: str) -> tuple[str, str]:
    key, cert = f"{name}.key", f"{name}.pem"
    _run(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return key, cert


def _leaf(directory: str, name: str, ca: tuple[str, str], extensions: str) -> tuple[str, str]:
    key, csr, cert, ext = f"{name}.key", f"{name}.csr", f"{name}.pem", f"{name}.ext"
    with open(os.path.join(directory, ext), "w") as f:
        f.write(extensions)
    _run(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _run(
        "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
        cwd=directory,
    )  # fmt: skip
    return os.path.join(directory, cert), os.path.join(directory, key)


def make_pki(directory: str) -> Pki:
    os.makedirs(directory, exist_ok=True)
    ca = _ca(directory, "test-ca")
    server_ext = (
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName={}\n"
    )
    server = _leaf(directory, "server", ca, server_ext.format("IP:127.0.0.1,DNS:localhost"))
    other = _leaf(directory, "other-host", ca, server_ext.format("DNS:broker.invalid"))
    client = _leaf(
        directory,
        "client",
        ca,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\n",
    )
    other_ca = _ca(directory, "other-ca")
    return Pki(
        ca=os.path.join(directory, ca[1]),
        server_cert=server[0],
        server_key=server[1],
        other_host_cert=other[0],
        other_host_key=other[1],
        client_cert=client[0],
        client_key=client[1],
        other_ca=os.path.join(directory, other_ca[1]),
    )
