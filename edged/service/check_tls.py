"""An output's TLS files (the broker's, the stream's), read as its publisher will read them
(Python's ``ssl``): a CA file with certificates in it, a client certificate, and the private
key that belongs to it (not encrypted: the daemon has no one to ask for a passphrase)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from edged.config.events import TlsConfig
from edged.config.root import Loc

MQTT_TLS: Loc = ("mqtt", "tls")


class _Encrypted(Exception):
    pass


def _passphrase() -> str:
    raise _Encrypted


def _load(path: Path, what: str, load: Callable[[ssl.SSLContext], None]) -> str | None:
    """Why ``load`` (reading ``path``) fails on a fresh client context, or None."""
    try:
        load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            return f"{path} is not the private key of the certificate (tls.cert)"
        return f"{path} holds no PEM {what}: {exc.reason or exc}"
    except _Encrypted:
        return f"{path} is encrypted with a passphrase; give an unencrypted key"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None


def _certificates(path: Path) -> str | None:
    # a certificate file reads as a list of trusted certificates: a test that it holds some
    return _load(path, "certificate", lambda c: c.load_verify_locations(cafile=str(path)))


def tls_problems(tls: TlsConfig, at: Loc = MQTT_TLS) -> list[tuple[Loc, str]]:
    """``at``: where the section is (``mqtt.tls``, ``outputs.nats.tls``)."""
    problems: list[tuple[Loc, str]] = []
    if tls.ca is not None and (why := _certificates(tls.ca)) is not None:
        problems.append(((*at, "ca"), why))
    if tls.cert is None or tls.key is None:
        return problems
    if (why := _certificates(tls.cert)) is not None:
        problems.append(((*at, "cert"), why))
        return problems
    cert, key = str(tls.cert), str(tls.key)
    why = _load(
        tls.key,
        "private key",
        lambda c: c.load_cert_chain(cert, key, password=_passphrase),
    )
    if why is not None:
        problems.append(((*at, "key"), why))
    return problems
