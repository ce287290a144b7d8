"""Certificates for TLS tests, made with the openssl CLI: a CA, a broker certificate for
127.0.0.1, a client certificate, and a client certificate from another CA."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    stranger_cert: Path  # signed by other_ca, which the broker does not trust
    stranger_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _signed(name: str, ca: str, d: Path, ext: str | None = None) -> None:
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d,
    )  # fmt: skip
    args = ["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"]
    args += ["-CAcreateserial", "-out", f"{name}.crt", "-days", "1"]
    if ext is not None:
        (d / f"{name}.ext").write_text(ext)
        args += ["-extfile", f"{name}.ext"]
    _openssl(*args, cwd=d)


def make_certs(d: Path) -> Certs:
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl CLI: apt-get install openssl")
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
            "-out", f"{ca}.crt", "-days", "1", "-subj", f"/CN=edged test {ca}", cwd=d,
        )  # fmt: skip
    _signed("server", "ca", d, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed("client", "ca", d)
    _signed("stranger", "other-ca", d)
    return Certs(
        d / "ca.crt",
        d / "server.crt",
        d / "server.key",
        d / "client.crt",
        d / "client.key",
        d / "other-ca.crt",
        d / "stranger.crt",
        d / "stranger.key",
    )
