"""Credentials in camera URIs never leave the process: a property over generated URIs, and a
real daemon whose RTSP camera (with a password and a token) cannot be reached."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edged.core.redact import redact, redact_text
from edged.service.logs import RedactingFormatter
from tests.daemon import Daemon, camera_config
from tests.mqtt_helpers import Broker, Subscriber, free_port
from tests.test_observability import get

# Every secret holds this marker; nothing else can (the other alphabets lack "Z").
MARK = "ZZ"
PLAIN = "abcdefghijklmnop0123456789"
# what a password may hold unencoded: "@", ":" and "/" included (never "?", "#" or spaces)
SECRET_CHARS = PLAIN + "ZXYW@:/!$%*()+,~-_.[]"

plain = st.text(PLAIN, min_size=1, max_size=8)
secret = st.text(SECRET_CHARS, max_size=12).map(lambda s: MARK + s)
param_secret = st.text(PLAIN + "ZXYW!$%*()+,~-_.@:/", max_size=10).map(lambda s: MARK + s)
secret_name = st.sampled_from(
    [
        "password",
        "PASSWORD",
        "pwd",
        "passwd",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "Authorization",
        "sig",
        "signature",
        "secret",
        "user",
        "username",
        "login",
        "session",
        "credentials",
        "ticket",
    ]
)
plain_name = st.sampled_from(["channel", "subtype", "stream", "profile", "tcp", "fps"])


@st.composite
def uris(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A camera URI and the parts that must survive redaction."""
    scheme = draw(st.sampled_from(["rtsp", "rtsps", "http", "https", "rtmp"]))
    userinfo = ""
    if draw(st.booleans()):
        user = draw(st.one_of(plain, secret))
        userinfo = f"{user}:{draw(secret)}@" if draw(st.booleans()) else f"{MARK}{user}@"
    host = draw(plain) + "." + draw(plain)
    port = draw(st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")))
    path = "".join(f"/{p}" for p in draw(st.lists(plain, max_size=3)))
    semi = [(draw(secret_name), draw(param_secret)) for _ in range(draw(st.integers(0, 1)))]
    kept = [(draw(plain_name), draw(plain)) for _ in range(draw(st.integers(0, 2)))]
    hidden = [(draw(secret_name), draw(param_secret)) for _ in range(draw(st.integers(0, 2)))]
    query = draw(st.permutations(kept + hidden))
    uri = f"{scheme}://{userinfo}{host}{port}{path}"
    uri += "".join(f";{n}={v}" for n, v in semi)
    if query:
        uri += "?" + "&".join(f"{n}={v}" for n, v in query)
    survive = [f"{scheme}://", f"{host}{port}{path}", *(f"{n}={v}" for n, v in kept)]
    return uri, survive


@given(uris())
def test_no_secret_survives_and_everything_else_does(case: tuple[str, list[str]]) -> None:
    uri, survive = case
    out = redact(uri)
    assert MARK not in out, (uri, out)
    for part in survive:
        assert part in out, (uri, out, part)
    # in a message, as FFmpeg and OpenCV quote it
    message = redact_text(f"cannot open {uri}: Connection refused (after 3 tries)")
    assert MARK not in message
    assert message.startswith("cannot open ") and message.endswith(
        " Connection refused (after 3 tries)"
    )
    for part in survive:
        assert part in message, (message, part)


def test_the_cases_the_fault_run_found() -> None:
    assert redact("rtsp://admin:p@ss:w0rd@host/cam") == "rtsp://***@host/cam"
    assert (
        redact("rtsp://admin:S3cr3t@host/cam?token=T0k&password=P&channel=2")
        == "rtsp://***@host/cam?token=***&password=***&channel=2"
    )
    assert (
        redact("rtsp://host/cam;user=admin;password=x") == "rtsp://host/cam;user=***;password=***"
    )
    assert redact("/dev/video0") == "/dev/video0" and redact("0") == "0"
    assert redact("rtsp://10.0.0.5/s1") == "rtsp://10.0.0.5/s1"


def test_the_log_format_redacts_tracebacks_too() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise OSError("rtsp://admin:hunter2@cam/1: refused")
    except OSError:
        record = logging.LogRecord(
            "edged", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    text = formatter.format(record)
    assert "hunter2" not in text and "rtsp://***@cam/1: refused" in text


def test_a_daemon_with_a_secret_uri_shows_it_nowhere(tmp_path: Path, mqtt_broker: Broker) -> None:
    port = free_port()
    uri = (
        f"rtsp://admin:p@ss:{MARK}w0rd@127.0.0.1:{free_port()}/cam;password={MARK}1"
        f"?token={MARK}2&channel=1&pwd={MARK}3"
    )
    config = camera_config(
        tmp_path,
        {"uri": uri, "open_timeout_s": 2},
        mqtt={"host": mqtt_broker.host, "port": mqtt_broker.port},
        metrics={"port": port},
    )
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/test/#") as sub:
        daemon = Daemon(config)
        try:
            assert daemon.wait_for(
                lambda ev: sum(e["kind"] == "camera_status" for e in ev) >= 3, 60
            ), daemon.stderr
            status, body = get(f"http://127.0.0.1:{port}/healthz")
            assert status == 503
            health = json.loads(body)
            assert any("127.0.0.1" in r for r in health["reasons"]), health
            assert sub.wait_for(lambda: any(m.topic.endswith("/status") for m in sub.messages), 10)
            daemon.terminate()
        finally:
            daemon.kill()
        broker_text = "".join(m.payload.decode(errors="replace") for m in sub.messages)
    shown = {
        "logs": daemon.stderr,
        "events": json.dumps(daemon.events),
        "/healthz": body.decode(),
        "broker": broker_text,
    }
    for where, text in shown.items():
        assert MARK not in text, f"a secret in the {where}"
    (status_event, *_) = daemon.statuses()
    assert status_event["source"].startswith("rtsp://***@127.0.0.1:")
    assert "channel=1" in status_event["source"] and "token=***" in status_event["source"]
    assert "cannot open rtsp://***@127.0.0.1" in daemon.stderr
