"""MQTT 5 and 3.1.1, QoS 2, message expiry, TLS with client certificates, passwords from the
environment; TLS spoken to a plain port and a session taken over by a client with the same id
said as what they are — against a real Mosquitto."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from edged.config import load
from edged.config.events import JournalConfig, MqttConfig, TlsConfig
from edged.core.event import Event
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.mqtt_diagnose import TakeoverWatch, speaks_plain_mqtt
from tests.daemon import Daemon
from tests.mqtt_helpers import Broker, BrokerFactory, Subscriber, free_port
from tests.paths import DEMO, MODEL
from tests.schema import validator
from tests.tls_certs import Certs, make_certs

DEVICE = "dev1"
BASE = f"edged/{DEVICE}"
WAIT = 10.0


def events(n: int, retain: bool = False) -> list[Event]:
    return [
        Event(
            kind="zone_enter",
            camera="cam1",
            topic="cam1/zones/z",
            payload={"zone": "z", "track_id": i, "label": "person", "dwell_s": 0.0},
            retain=retain,
        )
        for i in range(n)
    ]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Any]:
    """``start(config) -> (publisher, journal)``; stopped and closed at teardown."""
    made: list[tuple[MqttPublisher, Journal]] = []

    def start(config: MqttConfig) -> tuple[MqttPublisher, Journal]:
        journal = Journal(JournalConfig(path=tmp_path / f"j{len(made)}.db"))
        publisher = MqttPublisher(config, DEVICE, journal)
        made.append((publisher, journal))
        publisher.start()
        return publisher, journal

    yield start
    for publisher, journal in made:
        publisher.stop(drain_timeout=0)
        journal.close()


@pytest.mark.parametrize(("protocol", "qos"), [("5", 2), ("3.1.1", 2), ("3.1.1", 0)])
def test_protocols_and_qos_deliver_in_order_and_prune(
    mqtt_broker_factory: BrokerFactory, started: Any, protocol: str, qos: int
) -> None:
    broker = mqtt_broker_factory()
    with Subscriber(broker.host, broker.port, f"{BASE}/cam1/#", qos=2) as sub:
        publisher, journal = started(MqttConfig(port=broker.port, protocol=protocol, qos=qos))
        assert publisher.wait_connected(WAIT)
        stored = journal.append(events(30))
        assert sub.wait_for(lambda: len(sub.messages) >= 30, WAIT)
        # QoS 2: pruned only once PUBCOMP came back
        assert publisher.wait_drained(WAIT)
        assert [m["seq"] for m in sub.json()] == [e.seq for e in stored]
    broker.stop()


def test_protocol_is_checked_and_read_from_yaml_numbers() -> None:
    assert MqttConfig.model_validate({"protocol": 5}).protocol == "5"
    with pytest.raises(ValueError, match="protocol"):
        MqttConfig.model_validate({"protocol": 4})
    with pytest.raises(ValueError, match="qos"):
        MqttConfig.model_validate({"qos": 3})


def test_transient_events_expire_and_state_does_not(
    mqtt_broker_factory: BrokerFactory, started: Any
) -> None:
    broker = mqtt_broker_factory()
    with Subscriber(broker.host, broker.port, f"{BASE}/cam1/#", mqtt5=True) as sub:
        publisher, journal = started(MqttConfig(port=broker.port, expiry_s=600))
        assert publisher.wait_connected(WAIT)
        journal.append([*events(1), *events(1, retain=True)])
        assert sub.wait_for(lambda: len(sub.messages) == 2, WAIT)
    transient, state = sub.messages
    # the broker passes on what is left of the interval: at most what was set
    assert 0 < transient.properties.MessageExpiryInterval <= 600
    assert not hasattr(state.properties, "MessageExpiryInterval")
    broker.stop()


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def tls_broker(factory: BrokerFactory, certs: Certs) -> tuple[Any, int]:
    port = free_port()
    broker = factory(
        extra=[
            f"listener {port} 127.0.0.1",
            f"cafile {certs.ca}",
            f"certfile {certs.server_cert}",
            f"keyfile {certs.server_key}",
            "require_certificate true",
        ]
    )
    return broker, port


def test_tls_with_client_certificate_delivers(
    mqtt_broker_factory: BrokerFactory, started: Any, certs: Certs
) -> None:
    broker, tls_port = tls_broker(mqtt_broker_factory, certs)
    tls = TlsConfig(ca=certs.ca, cert=certs.client_cert, key=certs.client_key)
    with Subscriber(broker.host, broker.port, f"{BASE}/cam1/#") as sub:
        publisher, journal = started(MqttConfig(port=tls_port, tls=tls))
        assert publisher.wait_connected(WAIT), broker.log()
        stored = journal.append(events(5))
        assert sub.wait_for(lambda: len(sub.messages) == 5, WAIT)
        assert publisher.wait_drained(WAIT)
    assert {m["id"] for m in sub.json()} == {e.id for e in stored}
    assert "certificate verify failed" not in broker.log()
    broker.stop()


def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float) -> list[str]:
    """The error messages logged, once one contains ``text`` or after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a bounded wait between looks at the records
    while True:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        if any(text in m for m in errors) or time.monotonic() > deadline:
            return errors
        pause.wait(0.05)


def test_tls_client_certificate_from_an_unknown_ca_is_rejected_with_a_clear_error(
    mqtt_broker_factory: BrokerFactory,
    started: Any,
    certs: Certs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, tls_port = tls_broker(mqtt_broker_factory, certs)
    tls = TlsConfig(ca=certs.ca, cert=certs.stranger_cert, key=certs.stranger_key)
    with caplog.at_level(logging.INFO, logger="edged.outputs.mqtt"):
        publisher, journal = started(MqttConfig(port=tls_port, tls=tls, reconnect_min_s=0.1))
        journal.append(events(2))
        errors = wait_for_log(caplog, "ended the TLS session", WAIT)
    assert any("unknown ca" in m and "client certificate" in m for m in errors), errors
    # logged once, not once per retry
    assert sum("ended the TLS session" in m for m in errors) == 1
    assert not publisher.connected and journal.backlog() == 2
    assert "certificate verify failed" in broker.log()
    broker.stop()


def test_tls_broker_not_trusted_by_our_ca_fails_the_handshake_clearly(
    mqtt_broker_factory: BrokerFactory,
    started: Any,
    certs: Certs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, tls_port = tls_broker(mqtt_broker_factory, certs)
    tls = TlsConfig(ca=certs.other_ca, cert=certs.client_cert, key=certs.client_key)
    with caplog.at_level(logging.INFO, logger="edged.outputs.mqtt"):
        publisher, _ = started(MqttConfig(port=tls_port, tls=tls, reconnect_min_s=0.1))
        errors = wait_for_log(caplog, "TLS handshake failed", WAIT)
    assert any("certificate verify failed" in m for m in errors), errors
    assert not publisher.connected
    broker.stop()


def test_tls_config_names_missing_files_and_unpaired_keys(certs: Certs, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.pem is not a file"):
        TlsConfig(ca=tmp_path / "nope.pem")
    with pytest.raises(ValueError, match="cert and key go together"):
        TlsConfig(cert=certs.client_cert)


# -- credentials ----------------------------------------------------------------------------


def test_password_comes_from_the_environment_and_is_never_logged(
    mqtt_broker_factory: BrokerFactory,
    started: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s3cret-Pa55word-xyz"
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "edged", secret], check=True)
    passwd.chmod(0o600)
    # the whole broker wants a password: the later allow_anonymous wins
    broker = mqtt_broker_factory(extra=["allow_anonymous false", f"password_file {passwd}"])
    port = broker.port
    config_path = tmp_path / "edged.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "device_id": DEVICE,
                "mqtt": {"port": port, "username": "edged", "password": "${MQTT_PASSWORD}"},
                "models": {"coco": {"path": str(MODEL)}},
                "cameras": {"c": {"source": {"uri": "x.mp4"}, "detect": {"model": "coco"}}},
            }
        )
    )
    monkeypatch.setenv("MQTT_PASSWORD", secret)
    config = load(config_path)
    assert config.mqtt is not None
    assert secret not in repr(config) and secret not in str(config.mqtt)
    with caplog.at_level(logging.DEBUG):
        publisher, journal = started(config.mqtt)
        assert publisher.wait_connected(WAIT), broker.log()
        journal.append(events(1))
        assert publisher.wait_drained(WAIT)  # the broker acknowledged it
        wrong = config.mqtt.model_copy(
            update={"password": SecretStr("wrong"), "client_id": "intruder"}
        )
        intruder, _ = started(wrong)
        refused = wait_for_log(caplog, "refused", WAIT)
    assert any("Not authorized" in m or "Bad user name or password" in m for m in refused)
    assert not intruder.connected
    assert all(secret not in r.getMessage() for r in caplog.records)
    broker.stop()


def test_overflow_during_an_outage_is_published_with_the_survivors(
    mqtt_broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = mqtt_broker_factory()
    # every loss reported at once (overflow_every_s=0): each report takes a row too
    bound = 100  # the least a config may set
    config = JournalConfig(path=tmp_path / "j.db", max_backlog=bound, overflow_every_s=0)
    journal = Journal(config)
    publisher = MqttPublisher(MqttConfig(port=broker.port), DEVICE, journal)
    # no publisher running yet: 250 events against a bound of 100, as in an outage
    stored = [e for _ in range(250) for e in journal.append(events(1))]
    survivors = journal.pending()
    assert (
        len(survivors) == bound
        and journal.dropped == 250 + sum(e.kind == "overflow" for e in stored) - bound
    )
    try:
        with Subscriber(broker.host, broker.port, f"{BASE}/#") as sub:
            publisher.start()
            assert publisher.wait_connected(WAIT)
            assert publisher.wait_drained(WAIT)
            assert sub.wait_for(
                lambda: sum(not m.topic.endswith("/availability") for m in sub.messages) >= bound,
                WAIT,
            )
    finally:
        publisher.stop(drain_timeout=0)
        journal.close()
    received = [m for m in sub.messages if not m.topic.endswith("/availability")]
    assert [json.loads(m.payload)["seq"] for m in received] == [e.seq for e in survivors]
    overflow = [json.loads(m.payload) for m in received if m.topic == f"{BASE}/overflow"]
    assert overflow, "the loss was reported to subscribers"
    check = validator()
    for m in received:
        check.validate(json.loads(m.payload))
    last = overflow[-1]
    assert last["kind"] == "overflow" and last["camera"] is None
    assert last["dropped_total"] == journal.dropped and last["policy"] == "drop_oldest"
    broker.stop()


# -- failures said as what they are: TLS to a plain port, a session taken over ---------


def test_tls_to_a_plain_port_says_so(
    mqtt_broker: Broker, started: Any, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    assert speaks_plain_mqtt(mqtt_broker.host, mqtt_broker.port)
    tls = TlsConfig(ca=certs.ca)
    with caplog.at_level(logging.INFO, logger="edged.outputs.mqtt"):
        publisher, journal = started(
            MqttConfig(port=mqtt_broker.port, tls=tls, reconnect_min_s=0.1, reconnect_max_s=0.2)
        )
        journal.append(events(2))
        errors = wait_for_log(caplog, "speaks plain MQTT", 10)
        # several retries later it is still said once
        wait_for_log(caplog, "never logged", 1.5)
    said = [m for m in errors if "speaks plain MQTT" in m]
    assert len(said) == 1, errors
    assert f"127.0.0.1:{mqtt_broker.port} speaks plain MQTT, not TLS" in said[0]
    assert not any("unreachable" in r.getMessage() for r in caplog.records)
    assert not publisher.connected and journal.backlog() == 2


def test_a_tls_port_and_a_dead_port_are_not_plain_mqtt(
    mqtt_broker_factory: BrokerFactory, certs: Certs
) -> None:
    broker, tls_port = tls_broker(mqtt_broker_factory, certs)
    assert not speaks_plain_mqtt("127.0.0.1", tls_port)
    assert not speaks_plain_mqtt("127.0.0.1", free_port())
    broker.stop()


def test_a_dead_port_with_tls_is_still_unreachable(
    started: Any, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="edged.outputs.mqtt"):
        started(MqttConfig(port=free_port(), tls=TlsConfig(ca=certs.ca), reconnect_min_s=0.1))
        deadline_errors = wait_for_log(caplog, "never logged", 1.5)
    assert not any("TLS" in m for m in deadline_errors)
    assert any("unreachable" in r.getMessage() for r in caplog.records)


def test_takeover_watch_tells_a_takeover_from_a_broker_restart() -> None:
    watch = TakeoverWatch(short_s=5, times=3, window_s=60)
    # a broker restart: one long session ends, the next lasts
    watch.connected(now=0)
    assert not watch.dropped(False, now=3600)
    # another client with the same id: sessions end moments after they begin
    verdicts = []
    for t in (3700, 3701.5, 3703):
        watch.connected(now=t)
        verdicts.append(watch.dropped(False, now=t + 0.4))
    assert verdicts == [False, False, True] and watch.takeovers == 1
    # a long session in between resets the pattern
    watch.connected(now=4000)
    assert not watch.dropped(False, now=4100)
    watch.connected(now=4101)
    assert not watch.dropped(False, now=4101.2)
    # an MQTT 5 broker that says so is believed at once
    assert watch.dropped(True, now=4200) and watch.takeovers == 2


def test_two_daemons_with_one_device_id_are_told_their_session_is_taken_over(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    env = {"EDGED_MQTT_HOST": mqtt_broker.host, "EDGED_MQTT_PORT": str(mqtt_broker.port)}
    daemons = [
        Daemon(DEMO, env={**env, "EDGED_STATE_DIR": str(tmp_path / name)})
        for name in ("first", "second")
    ]
    try:
        assert any(d.logged("MQTT session taken over", 25) for d in daemons), [
            d.stderr for d in daemons
        ]
        told = next(d for d in daemons if "MQTT session taken over" in d.stderr)
        assert "same client id 'edged-demo'" in told.stderr
        assert "device_id 'demo'" in told.stderr
        assert "Unspecified error" not in told.stderr.split("MQTT session taken over")[1]
    finally:
        for d in daemons:
            d.kill()
