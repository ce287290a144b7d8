"""MQTT test helpers: a real Mosquitto broker process, and a subscriber that records what it
receives and lets a test wait on it."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO_FALLBACK = "/usr/sbin/mosquitto"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def find_mosquitto() -> str:
    """Path of the mosquitto binary; fails the test (never skips) when it is missing."""
    path = shutil.which("mosquitto")
    if path is None and os.access(MOSQUITTO_FALLBACK, os.X_OK):
        path = MOSQUITTO_FALLBACK
    if path is None:
        pytest.fail(
            "mosquitto not found on PATH nor at /usr/sbin/mosquitto; the MQTT tests need"
            " a real broker: apt-get install mosquitto"
        )
    return path


class Broker:
    """One mosquitto process on a fixed port; ``stop()``/``start()`` restart it on that port.

    With ``persistence=True`` the broker keeps sessions, subscriptions and queued QoS 1
    messages across a restart, so a persistent subscriber misses nothing during an outage.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        binary: str,
        workdir: Path,
        port: int,
        persistence: bool = False,
        extra: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        lines = [
            f"listener {port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if persistence else 'false'}",
            # Only takes effect when run as root, where it keeps mosquitto from switching to a
            # user that cannot write into the test's temp dir.
            f"user {getpass.getuser()}",
            "log_dest stderr",
            # Room for everything a persistent subscriber misses while it reconnects.
            "max_queued_messages 100000",
        ]
        if persistence:
            lines.append(f"persistence_location {workdir}/")
        # More listeners (TLS, passwords): the plain one above stays first, for subscribers.
        lines += extra
        self.conf.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and return once its port accepts connections."""
        if self.running:
            return
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"mosquitto did not listen on {self.port} within {timeout}s:\n{self.log()}"
                )
            try:
                # Doubles as the pause between connection attempts.
                self._proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"mosquitto exited with {self._proc.returncode}:\n{self.log()}")

    def stop(self) -> None:
        """Terminate mosquitto (SIGTERM, which also saves persistence) and wait for it."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Relay:
    """A TCP relay in front of a broker that can drop the broker's replies (PUBACKs) while it
    keeps forwarding everything the client sends: a link that loses acknowledgements."""

    host = "127.0.0.1"

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server((self.host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._dropping = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def drop_replies(self) -> None:
        self._dropping.set()

    def forward_replies(self) -> None:
        self._dropping.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            for src, dst, drop in ((client, upstream, None), (upstream, client, self._dropping)):
                threading.Thread(target=self._pump, args=(src, dst, drop), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, drop: threading.Event | None) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)  # pass the end of the stream on
                    return
                if drop is None or not drop.is_set():
                    dst.sendall(data)
            except OSError:
                return

    def cut(self) -> None:
        """Drop every connection through the relay (a link that flaps); new ones are taken."""
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # unblocks accept()
        self._listener.close()
        for sock in self._sockets:
            sock.close()


# make(persistence=False, port=None, start=True, extra=()) -> Broker: mqtt_broker_factory.
BrokerFactory = Callable[..., Broker]


class Message(NamedTuple):
    topic: str
    payload: bytes
    retain: bool
    properties: Any = None  # MQTT 5 only


class Subscriber:
    """Connects to ``host:port``, subscribes to ``topic`` and records every message.

    The constructor returns once the subscription is acknowledged. ``persistent=True`` uses a
    non-clean session (fixed client id), which with a persistent broker keeps the subscription
    and the queued QoS 1 messages across a broker restart; it reconnects on its own.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topic: str = "#",
        *,
        qos: int = 1,
        persistent: bool = False,
        client_id: str | None = None,
        timeout: float = 5.0,
        mqtt5: bool = False,
    ) -> None:
        self.topic = topic
        self._qos = qos
        # Re-entrant, so a wait_for predicate may call messages / json().
        self._cond = threading.Condition(threading.RLock())
        self._messages: list[Message] = []
        self._subscribed = False
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-sub-{uuid.uuid4().hex[:12]}",
            clean_session=None if mqtt5 else not persistent,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        )
        self._client.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect(host, port, keepalive=30)
        self._client.loop_start()
        if not self.wait_for(lambda: self._subscribed, timeout):
            self.close()
            raise TimeoutError(f"no SUBACK for {topic!r} from {host}:{port} within {timeout}s")

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if flags.session_present:
            # The broker kept our subscription; subscribing again would replay retained ones.
            with self._cond:
                self._subscribed = True
                self._cond.notify_all()
        else:
            client.subscribe(self.topic, self._qos)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any], properties: Any
    ) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            with self._cond:
                self._subscribed = True
                self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(
                Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.properties)
            )
            self._cond.notify_all()

    @property
    def messages(self) -> list[Message]:
        """A snapshot of everything received so far, in arrival order."""
        with self._cond:
            return list(self._messages)

    def json(self, topic_filter: str | None = None) -> list[dict[str, Any]]:
        """Payloads parsed as JSON, in arrival order, of the messages matching ``topic_filter``."""
        return [
            json.loads(m.payload)
            for m in self.messages
            if topic_filter is None or mqtt.topic_matches_sub(topic_filter, m.topic)
        ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` is true (re-checked on every message) or ``timeout``."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
