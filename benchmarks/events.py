"""Events through the journal and a real Mosquitto (started here, on a free port).

    python -m benchmarks.events [--events 10000] [--json]

- throughput: ``--events`` events appended in batches of 10 as fast as the journal takes
  them, timed until the journal is drained (every row pruned: written for QoS 0, PUBACK for
  1, PUBCOMP for 2) and until a subscriber has them all; per QoS and in-flight window.
- latency: 50 events/s for ``--seconds``; each event's time from ``append`` (committed) to
  the acknowledgement that pruned it: commit → publisher thread → broker → PUBACK. p50/p99.
- replay: ``--events`` appended while the broker is down, then the broker starts; events/s
  from the connection until the journal is drained.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edged.config.events import JournalConfig, MqttConfig
from edged.core.event import Event
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher

BATCH = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    def __init__(self, workdir: Path, inflight: int) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        conf = workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"max_inflight_messages {inflight}\nmax_queued_messages 1000000\n"
            f"user {os.environ.get('USER', 'root')}\n"
        )
        self.cmd = [binary, "-c", str(conf)]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


class Counter:
    """A subscriber that counts distinct event ids."""

    def __init__(self, port: int, topic: str) -> None:
        self.ids: set[str] = set()
        self.cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(5):
            raise RuntimeError("no SUBACK")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.ids.add(json.loads(msg.payload)["id"])
            self.cond.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.ids) >= n, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def unbounded(path: Path, max_backlog: int = 100_000) -> JournalConfig:
    """No age bound: the journal these numbers have always measured."""
    return JournalConfig(path=path, max_backlog=max_backlog, max_age_s=None)


class TimedJournal(Journal):
    """Records when each seq was appended and when it was pruned."""

    def __init__(self, config: JournalConfig) -> None:
        super().__init__(config)
        self.appended_at: dict[int, float] = {}
        self.pruned_at: dict[int, float] = {}

    def append(self, events: Any) -> list[Event]:
        out = super().append(events)
        now = time.perf_counter()
        for e in out:
            self.appended_at[e.seq] = now
        return out

    def mark_delivered(self, seqs: Iterable[int], output: str | None = None) -> None:
        seqs = list(seqs)
        super().mark_delivered(seqs, output)
        now = time.perf_counter()
        for s in seqs:
            self.pruned_at[s] = now


def events(n: int) -> list[Event]:
    return [
        Event(
            kind="zone_enter",
            camera="cam",
            topic="cam/zones/door",
            payload={"zone": "door", "track_id": i, "label": "person", "dwell_s": 0.0},
            frame_ts=time.time(),
        )
        for i in range(n)
    ]


def publisher(
    port: int, journal: Journal, qos: int, inflight: int, protocol: str = "5"
) -> MqttPublisher:
    config = MqttConfig.model_validate(
        {"port": port, "qos": qos, "max_inflight": inflight, "protocol": protocol}
    )
    return MqttPublisher(config, "bench", journal)


def throughput(work: Path, n: int, qos: int, inflight: int) -> dict[str, Any]:
    broker = Mosquitto(work, inflight)
    broker.start()
    journal = Journal(unbounded(work / f"tp-{qos}-{inflight}.db", 10 * n))
    pub = publisher(broker.port, journal, qos, inflight)
    sub = Counter(broker.port, "edged/bench/cam/#")
    try:
        pub.start()
        assert pub.wait_connected(10)
        batch = events(n)
        t0 = time.perf_counter()
        for k in range(0, n, BATCH):
            journal.append(batch[k : k + BATCH])
        appended = time.perf_counter() - t0
        assert pub.wait_drained(120), f"not drained: {journal.backlog()} left"
        drained = time.perf_counter() - t0
        assert sub.wait(n, 60), f"subscriber has {len(sub.ids)} of {n}"
        received = time.perf_counter() - t0
    finally:
        sub.close()
        pub.stop(0)
        journal.close()
        broker.stop()
    return {
        "qos": qos,
        "max_inflight": inflight,
        "events": n,
        "append_events_per_s": round(n / appended),
        "acked_events_per_s": round(n / drained),
        "delivered_events_per_s": round(n / received),
    }


def latency(work: Path, seconds: float, rate: float, inflight: int) -> dict[str, Any]:
    broker = Mosquitto(work, inflight)
    broker.start()
    journal = TimedJournal(unbounded(work / "lat.db"))
    pub = publisher(broker.port, journal, 1, inflight)
    try:
        pub.start()
        assert pub.wait_connected(10)
        n = int(seconds * rate)
        start = time.perf_counter()
        for i, ev in enumerate(events(n)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            journal.append([ev])
        assert pub.wait_drained(30)
    finally:
        pub.stop(0)
        journal.close()
        broker.stop()
    ms = np.array([1000 * (journal.pruned_at[s] - t) for s, t in journal.appended_at.items()])
    return {
        "qos": 1,
        "events": len(ms),
        "rate_per_s": rate,
        "append_to_ack_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "append_to_ack_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "append_to_ack_ms_max": round(float(ms.max()), 3),
    }


def replay(work: Path, n: int, inflight: int) -> dict[str, Any]:
    broker = Mosquitto(work, inflight)
    journal = Journal(unbounded(work / f"replay-{inflight}.db", 10 * n))
    pub = publisher(broker.port, journal, 1, inflight)
    try:
        batch = events(n)
        for k in range(0, n, BATCH):
            journal.append(batch[k : k + BATCH])
        pub.start()  # the broker is down: the backlog waits
        broker.start()
        assert pub.wait_connected(30)
        t0 = time.perf_counter()
        assert pub.wait_drained(120), f"not drained: {journal.backlog()} left"
        took = time.perf_counter() - t0
    finally:
        pub.stop(0)
        journal.close()
        broker.stop()
    return {
        "qos": 1,
        "max_inflight": inflight,
        "backlog": n,
        "replay_events_per_s": round(n / took),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "protocol": "MQTT 5, paho-mqtt 2, Mosquitto on localhost",
            "throughput": [
                throughput(work, args.events, qos, inflight)
                for qos, inflight in ((0, 20), (1, 20), (2, 20), (1, 100))
            ],
            "latency": latency(work, args.seconds, 50.0, 20),
            "replay": [replay(work, args.events, inflight) for inflight in (20, 100)],
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for row in result["throughput"]:
        print(
            f"QoS {row['qos']} window {row['max_inflight']}: append {row['append_events_per_s']}/s,"
            f" acked {row['acked_events_per_s']}/s, delivered {row['delivered_events_per_s']}/s"
        )
    lat = result["latency"]
    print(
        f"append→PUBACK at {lat['rate_per_s']:.0f}/s: p50 {lat['append_to_ack_ms_p50']} ms,"
        f" p99 {lat['append_to_ack_ms_p99']} ms"
    )
    for row in result["replay"]:
        print(f"replay window {row['max_inflight']}: {row['replay_events_per_s']} events/s")


if __name__ == "__main__":
    main()
