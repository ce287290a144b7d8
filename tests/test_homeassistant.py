"""Home Assistant discovery against a real Mosquitto: alert sensors that count the active
alerts of their kind (their templates rendered with Jinja2, as HA does), entities cleared when
a reload drops them, and the scene presets' entities on topics edged really publishes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from edged.analytics.alerts import ActiveAlerts, Alerts
from edged.config import Config, load
from edged.config.camera import alert_kinds
from edged.config.events import JournalConfig
from edged.core.event import Event
from edged.outputs.homeassistant import configuration_url, discovery
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.sink import EventSink
from tests.daemon import Daemon
from tests.mqtt_helpers import Broker, BrokerFactory, Subscriber
from tests.paths import CLIP, MODEL, ROOT
from tests.schema import validator
from tests.waiting import poll

SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
TOP = [[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]]
WAIT = 60.0  # model load and inference on 2 shared cores


def render(template: str, payload: dict[str, Any]) -> str:
    """``template`` as Home Assistant renders it for an MQTT message: Jinja2 with the payload
    as ``value_json`` and HA's ``tojson`` filter."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["tojson"] = json.dumps
    return env.from_string(template).render(value_json=payload)


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def by_unique_id(config: Config) -> dict[str, dict[str, Any]]:
    return {c["unique_id"]: c for c in (json.loads(p) for _, p in discovery(config))}


def traffic_camera() -> dict[str, Any]:
    return {
        "source": {"uri": str(CLIP)},
        "detect": {"model": "coco"},
        "scene": {
            "preset": "traffic",
            "calibration": {"image": SQUARE, "ground": [[0, 0], [30, 0], [30, 20], [0, 20]]},
            "lanes": {"east": {"polygon": SQUARE, "direction": "left_to_right"}},
            "speed_limit": 50,
        },
    }


def test_an_alert_sensor_stays_on_while_any_alert_of_its_kind_is_active(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    data = {
        "device_id": "box",
        "mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port},
        "journal": {"path": str(tmp_path / "events.db")},
        "homeassistant": {},
        "models": {"coco": {"path": str(MODEL), "backend": "cpu"}},
        "cameras": {"street": traffic_camera()},
    }
    config = load(write_config(tmp_path, data))
    assert config.mqtt is not None
    sensor = by_unique_id(config)["edged_box_street_speeding"]
    assert sensor["state_topic"] == "edged/box/street/alerts/speeding/active"
    assert sensor["json_attributes_topic"] == sensor["state_topic"]
    journal = Journal(JournalConfig(path=tmp_path / "events.db"))
    sink = EventSink(journal)
    publisher = MqttPublisher(config.mqtt, "box", journal, discovery(config))
    alerts = Alerts("street")
    active = ActiveAlerts("street", alert_kinds(config.cameras["street"]))
    emitted: list[Event] = []

    def speeding(vehicle: str, on: bool, t: float) -> None:
        events = active.follow(alerts.update("speeding", vehicle, on, t, 1000.0 + t))
        emitted.extend(events)
        sink.emit(events)

    with Subscriber(mqtt_broker.host, mqtt_broker.port, sensor["state_topic"]) as sub:

        def active_now() -> int | None:
            states = sub.json()
            return states[-1]["active"] if states else None

        publisher.start()
        try:
            assert publisher.wait_connected(10)
            start = active.follow([])  # as a camera starts: none active, whatever was retained
            emitted.extend(start)
            sink.emit(start)
            assert sub.wait_for(lambda: active_now() == 0, 10)
            for i, vehicle in enumerate(("car-1", "car-2", "car-3")):
                speeding(vehicle, True, float(i))
            assert sub.wait_for(lambda: active_now() == 3, 10)
            speeding("car-2", False, 3.0)
            # the latest alert message says "end"; two are still speeding
            assert sub.wait_for(lambda: active_now() == 2, 10)
            state = sub.json()[-1]
            assert render(sensor["value_template"], state) == "ON"
            attributes = json.loads(render(sensor["json_attributes_template"], state))
            assert attributes["active"] == 2
            assert [a["subject"] for a in attributes["alerts"]] == ["car-1", "car-3"]
            speeding("car-1", False, 4.0)
            speeding("car-3", False, 5.0)
            assert sub.wait_for(lambda: active_now() == 0, 10)
            assert render(sensor["value_template"], sub.json()[-1]) == "OFF"
            assert all(m.retain is False for m in sub.messages)  # live, as sent
        finally:
            publisher.stop()
            journal.close()
    # retained: Home Assistant starting later reads the count
    with Subscriber(mqtt_broker.host, mqtt_broker.port, sensor["state_topic"]) as late:
        assert late.wait_for(lambda: len(late.messages) == 1, 5)
        assert late.messages[0].retain and late.json()[0]["active"] == 0
    check = validator()
    for i, event in enumerate(emitted, start=1):
        check.validate(json.loads(event.to_json("box")) | {"seq": i})


def test_the_alert_counts_follow_every_alert_source_of_a_camera() -> None:
    """A zone's and a scene's alerts of one kind are counted together, each by its id."""
    zone_alerts, scene_alerts = Alerts("cam"), Alerts("cam")
    active = ActiveAlerts("cam", ["loitering"])
    assert [(e.kind, e.payload["active"]) for e in active.follow([])] == [("alerts_active", 0)]
    assert active.follow([]) == []  # nothing changed, nothing said
    events = zone_alerts.update("loitering", "plaza", True, 0.0, 1.0)
    events += scene_alerts.update("loitering", "plaza", True, 0.0, 1.0)
    states = [e for e in active.follow(events) if e.kind == "alerts_active"]
    assert [(s.topic, s.payload["active"], s.retain) for s in states] == [
        ("cam/alerts/loitering/active", 2, True)
    ]
    ended = active.follow(zone_alerts.update("loitering", "plaza", False, 1.0, 2.0))
    assert ended[-1].payload["active"] == 1 and ended[-1].frame_ts == 2.0


def camera_with_zones(zones: dict[str, Any]) -> dict[str, Any]:
    # a looping clip at its own 7 fps: a camera that never ends
    return {
        "source": {"uri": str(CLIP), "loop": True, "realtime": True},
        "detect": {"model": "coco", "classes": ["person"]},
        "zones": zones,
    }


def test_a_reload_clears_the_entities_it_removed_and_keeps_the_others(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    data: dict[str, Any] = {
        "device_id": "test",
        "mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port},
        "journal": {"path": str(tmp_path / "events.db")},
        "homeassistant": {},
        "models": {"coco": {"path": str(MODEL), "backend": "cpu", "threads": 1}},
        "cameras": {
            "a": camera_with_zones(
                {"hall": {"polygon": SQUARE}, "door": {"polygon": TOP, "loiter_s": 5}}
            )
        },
    }
    path = write_config(tmp_path, data)
    prefix = "homeassistant/binary_sensor/edged_test"
    door = "homeassistant/sensor/edged_test/a_door_occupancy/config"
    gone = {door, f"{prefix}/a_door_presence/config", f"{prefix}/a_loitering/config"}
    kept = {
        "homeassistant/sensor/edged_test/a_hall_occupancy/config",
        f"{prefix}/a_hall_presence/config",
        f"{prefix}/a_status/config",
    }
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "homeassistant/#") as live:
        daemon = Daemon(path)
        try:
            assert live.wait_for(lambda: {m.topic for m in live.messages} >= gone | kept, WAIT), (
                daemon.stderr
            )
            # the door zone goes, and with it the only zone that could raise loitering
            del data["cameras"]["a"]["zones"]["door"]
            write_config(tmp_path, data)
            daemon.reload()
            assert daemon.wait_for(lambda ev: any(e["kind"] == "config_reload" for e in ev), 60)
            assert daemon.kinds("config_reload")[0]["updated"] == ["a"]

            def cleared() -> set[str]:
                return {m.topic for m in live.messages if m.payload == b""}

            def announced_after_the_clears() -> set[str]:
                topics = [m.topic for m in live.messages]
                last_clear = max(i for i, m in enumerate(live.messages) if m.payload == b"")
                return set(topics[last_clear + 1 :])

            # the clears, then the announcements of the new list
            assert live.wait_for(lambda: cleared() == gone, 10), (cleared(), daemon.stderr)
            assert live.wait_for(lambda: announced_after_the_clears() >= kept, 10)
            # what Home Assistant (re)starting now finds retained: the rest, not the removed
            with Subscriber(mqtt_broker.host, mqtt_broker.port, "homeassistant/#") as late:
                assert late.wait_for(lambda: {m.topic for m in late.messages} >= kept, 5)
                assert {m.topic for m in late.messages} == kept
                assert all(m.retain and json.loads(m.payload) for m in late.messages)
            assert daemon.terminate(within=5.0) < 5.0
            assert daemon.proc.returncode == 0, daemon.stderr
        finally:
            daemon.kill()


def test_replacing_the_announcements_while_disconnected_clears_at_the_next_connect(
    tmp_path: Path, mqtt_broker_factory: BrokerFactory
) -> None:
    """A reload while the broker is down: the clears are not lost, the next connect sends
    them before the announcements."""
    broker = mqtt_broker_factory(persistence=True)  # retained messages survive its restart
    data = {
        "device_id": "box",
        "mqtt": {"host": broker.host, "port": broker.port, "reconnect_max_s": 0.5},
        "journal": {"path": str(tmp_path / "events.db")},
        "models": {"coco": {"path": str(MODEL)}},
        "cameras": {"a": camera_with_zones({})},
    }
    config = load(write_config(tmp_path, data))
    assert config.mqtt is not None
    journal = Journal(JournalConfig(path=tmp_path / "events.db"))
    publisher = MqttPublisher(
        config.mqtt, "box", journal, [("ha/x/config", '{"n":1}'), ("ha/y/config", '{"n":2}')]
    )
    publisher.start()
    # a persistent session: it sees what is published after the restart, however soon
    live = Subscriber(broker.host, broker.port, "ha/#", persistent=True, client_id="ha-live")
    try:
        assert live.wait_for(lambda: len(live.messages) == 2, 10)
        broker.stop()
        poll(lambda: not publisher.connected, 10)
        publisher.replace_announce([("ha/y/config", '{"n":3}')])
        broker.start()
        assert live.wait_for(lambda: any(m.payload == b'{"n":3}' for m in live.messages), 10)
        after = [(m.topic, m.payload) for m in live.messages[2:]]
        assert after[after.index(("ha/x/config", b"")) + 1 :].count(("ha/y/config", b'{"n":3}'))
        # the clear went before: Home Assistant connecting now finds y alone
        with Subscriber(broker.host, broker.port, "ha/#") as late:
            assert late.wait_for(lambda: len(late.messages) >= 1, 5)
            assert [(m.topic, m.payload) for m in late.messages] == [("ha/y/config", b'{"n":3}')]
    finally:
        live.close()
        publisher.stop()
        journal.close()
        broker.stop()


def test_configuration_url_is_the_debug_view_or_the_configured_one(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "device_id": "box",
        "mqtt": {"host": "127.0.0.1"},
        "homeassistant": {},
        "models": {"coco": {"path": str(MODEL)}},
        "cameras": {"a": camera_with_zones({})},
    }

    def device(**changes: Any) -> dict[str, Any]:
        config = load(write_config(tmp_path, {**data, **changes}))
        devices = [c["device"] for c in by_unique_id(config).values()]
        assert all(d == devices[0] for d in devices)  # one device for all
        assert devices[0].get("configuration_url") == configuration_url(config)
        return dict(devices[0])

    assert "configuration_url" not in device()
    view = {"host": "127.0.0.1", "port": 9200}
    assert device(debug_view=view)["configuration_url"] == "http://127.0.0.1:9200/"
    anywhere = {"host": "0.0.0.0", "port": 9200, "insecure": True}
    host = socket.gethostname()
    assert device(debug_view=anywhere)["configuration_url"] == f"http://{host}:9200/"
    assert device(debug_view={"host": "::1"})["configuration_url"] == "http://[::1]:9109/"
    own = {"configuration_url": "https://nvr.example/edged"}
    assert (
        device(debug_view=view, homeassistant=own)["configuration_url"] == own["configuration_url"]
    )


# ---- the scene presets' entities, from the shipped configs run through their clips ---------

PRESET_RUNS = {
    # config, camera, more --set, the entities expected (unique ids without edged_<device>_)
    "traffic": (
        "traffic.yaml",
        "street",
        (),
        {"street_status"}
        | {
            f"street_lane_{lane}_{what}"
            for lane in ("rtl_far", "rtl_near", "ltr_near", "ltr_far")
            for what in ("vehicles", "speed")
        }
        | {"street_group_right_to_left_vehicles", "street_group_left_to_right_vehicles"}
        | {f"street_{k}" for k in ("wrong_way", "stopped_vehicle", "speeding", "congestion")},
    ),
    "retail_shelf": (
        "retail_shelf.yaml",
        "shelf",
        (),
        {"shelf_status", "shelf_empty_slot", "shelf_low_stock", "shelf_long_queue"}
        | {f"shelf_slot_{slot}_stock" for slot in ("left", "middle", "right")},
    ),
    "surveillance": (
        "surveillance.yaml",
        "campus",
        ("cameras.campus.snapshots={on: [alert]}",),
        {"campus_status", "campus_inside", "campus_entrance_in", "campus_entrance_out"}
        | {f"campus_{z}_{w}" for z in ("plaza", "walkway") for w in ("occupancy", "presence")}
        | {f"campus_{k}" for k in ("intrusion", "loitering", "crowding")}
        | {f"campus_snapshot_{k}" for k in ("intrusion", "loitering", "crowding")},
    ),
}


@pytest.fixture(scope="module", params=sorted(PRESET_RUNS))
def preset_run(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mqtt_broker_factory: BrokerFactory,
) -> tuple[str, dict[str, dict[str, Any]], dict[str, list[bytes]]]:
    """The preset's shipped config through its clip (as fast as it goes) with Home Assistant
    on: its discovery configs by unique id, and every payload published per topic."""
    name = request.param
    file, camera, extra, _ = PRESET_RUNS[name]
    broker = mqtt_broker_factory()
    tmp = tmp_path_factory.mktemp(name)
    sets = [
        f"mqtt.host={broker.host}",
        f"mqtt.port={broker.port}",
        f"journal.path={tmp / 'events.db'}",
        "homeassistant={}",
        "models.coco.backend=cpu",
        f"cameras.{camera}.source.realtime=false",
        *extra,
    ]
    try:
        with Subscriber(broker.host, broker.port, "#") as sub:
            proc = subprocess.run(
                [sys.executable, "-m", "edged", "run", str(ROOT / "configs" / file)]
                + [a for s in sets for a in ("--set", s)],
                capture_output=True,
                text=True,
                timeout=240,
            )
            assert proc.returncode == 0, proc.stderr
            # the last message of a run: availability offline, after every event
            assert sub.wait_for(lambda: any(m.payload == b"offline" for m in sub.messages), 10), (
                proc.stderr
            )
    finally:
        broker.stop()
    payloads: dict[str, list[bytes]] = {}
    for m in sub.messages:
        payloads.setdefault(m.topic, []).append(m.payload)
    configs = {
        c["unique_id"]: c
        for t, ps in payloads.items()
        if t.startswith("homeassistant/")
        for c in (json.loads(ps[-1]),)
    }
    return name, configs, payloads


def test_each_preset_offers_its_entities_on_topics_it_publishes(
    preset_run: tuple[str, dict[str, dict[str, Any]], dict[str, list[bytes]]],
) -> None:
    name, configs, payloads = preset_run
    device = next(iter(configs.values()))["device"]["identifiers"][0]
    assert set(configs) == {f"{device}_{e}" for e in PRESET_RUNS[name][3]}
    for unique_id, c in configs.items():
        if "image_topic" in c:
            assert c["content_type"] == "image/jpeg"
            assert any(p.startswith(b"\xff\xd8") for p in payloads.get(c["image_topic"], []))
            continue
        # edged published there, and every message there renders to a state
        got = payloads.get(c["state_topic"])
        assert got, f"{unique_id}: nothing published on {c['state_topic']}"
        for payload in got:
            value = json.loads(payload)
            state = render(c["value_template"], value)
            if c.get("device_class") in ("problem", "occupancy", "connectivity"):
                assert state in ("ON", "OFF"), (unique_id, state)
            else:
                # a number, or None (HA: unknown) for a value not known yet
                assert state == "None" or float(state) >= 0, (unique_id, state)
            if "json_attributes_template" in c:
                assert isinstance(json.loads(render(c["json_attributes_template"], value)), dict)


def test_preset_sensors_say_what_they_measure(
    preset_run: tuple[str, dict[str, dict[str, Any]], dict[str, list[bytes]]],
) -> None:
    name, configs, _ = preset_run
    by_suffix = {uid.split("_", 2)[2]: c for uid, c in configs.items()}
    if name == "traffic":
        speed = by_suffix["street_lane_rtl_near_speed"]
        assert (speed["device_class"], speed["unit_of_measurement"]) == ("speed", "km/h")
        assert speed["state_class"] == "measurement"
        assert by_suffix["street_group_left_to_right_vehicles"]["state_class"] == (
            "total_increasing"
        )
    elif name == "retail_shelf":
        stock = by_suffix["shelf_slot_left_stock"]
        assert (stock["state_class"], stock["unit_of_measurement"]) == ("measurement", "items")
    else:
        inside = by_suffix["campus_inside"]
        assert inside["state_topic"].endswith("/campus/surveillance/occupancy")
        assert inside["state_class"] == "measurement"
