"""Credentials never leave the process: not in logs, events, /healthz or error messages.

A camera URI carries secrets in two places: the user information before the host
(``rtsp://admin:p@ss@host/``, where a password may itself hold ``@``, ``:`` or ``/``), and
query or ``;`` parameters (``?token=…``, ``;password=…``, as ONVIF cameras and signed
stream URLs do). ``redact`` hides both in one URI; ``redact_text`` in every URI of a message
(FFmpeg and OpenCV quote the URI they failed on).
"""

from __future__ import annotations

import re

MASK = "***"
# a URI inside a message: a scheme, ://, then up to whitespace or a quote
_URI = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
# names of parameters whose value is a secret (matched anywhere in the name, any case)
_SECRET_NAMES = (
    "pass",
    "pwd",
    "token",
    "key",
    "auth",
    "sig",
    "secret",
    "cred",
    "user",
    "login",
    "session",
    "ticket",
)
# where ";name=value" parameters begin (a name holds no "@" or "/")
_SEMI_PARAM = re.compile(r";[^=;/@?#]*=")
_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#?]*)=(?P<value>[^&;#?]*)")


def _is_secret(name: str) -> bool:
    low = name.lower()
    return any(s in low for s in _SECRET_NAMES)


def redact(uri: str) -> str:
    """``uri`` with its user information replaced by ``***`` and the values of parameters
    that name a secret replaced by ``***``; anything else unchanged."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return _params(uri)
    # the user information ends at the last "@" before the parameters: a password may hold
    # "@", ":" or "/" unencoded, so the first "@" or "/" is not where it ends
    first_param = _SEMI_PARAM.search(rest)
    ends = [rest.find("?"), rest.find("#"), first_param.start() if first_param else -1]
    end = min((i for i in ends if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    if at >= 0:
        rest = f"{MASK}@{rest[at + 1 :]}"
    return f"{scheme}://{_params(rest)}"


def _params(text: str) -> str:
    def hide(m: re.Match[str]) -> str:
        if not _is_secret(m["name"]):
            return m[0]
        return f"{m['sep']}{m['name']}={MASK}"

    return _PARAM.sub(hide, text)


def redact_text(text: str) -> str:
    """``text`` with every URI in it redacted (see ``redact``)."""
    return _URI.sub(lambda m: redact(m[0]), text)
