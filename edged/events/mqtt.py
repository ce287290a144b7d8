"""Publishes the journal to an MQTT broker, at least once and in seq order (paho-mqtt 2).

Threads: paho's network thread runs the callbacks, which only record what happened (a
connection, a PUBACK) and wake the publisher thread. The publisher thread alone reads the
journal, publishes, keeps the mid → seq map and prunes acknowledged rows, so the map needs no
lock and a PUBACK that arrives before ``publish()`` has returned its mid is never lost: it is
queued and handled after the mid is recorded.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import threading
import time
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edged.config.events import MqttConfig
from edged.events.journal import Journal
from edged.latency import Latency

log = logging.getLogger(__name__)
_paho_log = logging.getLogger(f"{__name__}.paho")

MAX_INFLIGHT = 1000
_BATCH = 500
# A safety net only: appends, PUBACKs, connects and stop() all wake the publisher thread.
_IDLE_WAKE_S = 1.0
_OFFLINE_WAIT_S = 1.0


class _InFlight(NamedTuple):
    seq: int
    sent: float  # monotonic, at publish()
    frame_ts: float | None
    kind: str


class MqttPublisher:
    """Drains a ``Journal`` to ``<prefix>/<device>/<event.topic>`` and keeps the retained
    ``<prefix>/<device>/availability`` (``online``/``offline``, last will ``offline``)."""

    def __init__(self, config: MqttConfig, device_id: str, journal: Journal) -> None:
        self._config = config
        self._device_id = device_id
        self._journal = journal
        self._base = f"{config.topic_prefix}/{device_id}"
        self.availability_topic = f"{self._base}/availability"
        self.rejected = 0

        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._started = False
        self._thread: threading.Thread | None = None
        # Notified when rows are pruned or the connection drops; wait_drained waits on it.
        self._progress = threading.Condition()
        # Bumped on every successful connect; the publisher thread restarts from the top of
        # the backlog when it sees a new value (what was in flight may be lost).
        self._session = 0
        self._unreachable_logged = False
        # Filled by the network thread, drained by the publisher thread (deque ops are atomic):
        # (mid, monotonic and wall-clock time of the PUBACK).
        self._acks: collections.deque[tuple[int, float, float]] = collections.deque()
        # Publisher-thread state.
        self._inflight: dict[int, _InFlight] = {}
        # publish() → PUBACK, and the frame's capture → PUBACK per event kind (the age of an
        # event when the broker has it); written by the publisher thread only
        self.ack_latency = Latency()
        self.event_latency: dict[str, Latency] = {}
        self._cursor = 0
        self._seen_session = 0

        self.client_id = config.client_id or f"edged-{device_id}"
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else None
            self._client.username_pw_set(config.username, password)
        self._client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=0.5, max_delay=10)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        # A bug in a callback must not kill the network thread; see _on_log.
        self._client.suppress_exceptions = True
        self._client.on_log = self._on_log
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_socket_open = self._on_socket_open

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the current connection."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or ``timeout`` seconds have passed."""
        return self._connected.wait(timeout)

    def wait_drained(self, timeout: float) -> bool:
        """Block until the journal backlog is 0 (True), or until ``timeout`` or a lost
        connection (False)."""
        with self._progress:
            self._progress.wait_for(
                lambda: self._journal.backlog() == 0 or not self.connected, timeout
            )
            return self._journal.backlog() == 0

    def start(self) -> None:
        """Connect in the background and start publishing; never blocks on the broker."""
        if self._started:
            raise RuntimeError("MqttPublisher already started")
        self._started = True
        log.info(
            "MQTT connecting to %s:%d as %s (%d events pending)",
            self._config.host,
            self._config.port,
            self.client_id,
            self._journal.backlog(),
        )
        self._client.connect_async(
            self._config.host, self._config.port, keepalive=self._config.keepalive_s
        )
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="edged-mqtt-publisher", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Deliver what is pending (up to ``drain_timeout`` s, less if the broker is gone),
        publish ``offline``, disconnect. Undelivered events stay in the journal."""
        if not self._started or self._stopping.is_set():
            return
        if self.connected:
            self.wait_drained(drain_timeout)
        self._stopping.set()
        self._journal.wake()
        if self._thread is not None:
            self._thread.join()
        if self.connected and not self._say_offline():
            # "offline" is stuck behind unacknowledged events or a stalled link: drop the
            # connection without a DISCONNECT so that the broker publishes the last will.
            log.warning(
                "MQTT: 'offline' not acknowledged within %.1fs; closing the connection"
                " so the broker sends the last will",
                _OFFLINE_WAIT_S,
            )
            sock = self._client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed by the network thread
                    sock.shutdown(socket.SHUT_RDWR)
        # After a shutdown nothing can be sent any more; this just ends paho's loop at once.
        self._client.disconnect()
        self._client.loop_stop()
        backlog = self._journal.backlog()
        if backlog:
            log.warning("MQTT publisher stopped with %d events still in the journal", backlog)

    def _say_offline(self) -> bool:
        info = self._client.publish(self.availability_topic, "offline", qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        info.wait_for_publish(_OFFLINE_WAIT_S)
        return info.is_published()

    # -- network thread ---------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error(
                "MQTT connection to %s:%d refused: %s",
                self._config.host,
                self._config.port,
                reason_code,
            )
            return
        log.info("MQTT connected to %s:%d (%s)", self._config.host, self._config.port, reason_code)
        self._unreachable_logged = False
        # If stop() raced with this reconnect, do not leave a retained "online" behind.
        client.publish(
            self.availability_topic,
            "offline" if self._stopping.is_set() else "online",
            qos=1,
            retain=True,
        )
        with self._progress:
            self._session += 1
        self._connected.set()
        self._journal.wake()

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # Without this, Nagle holds a small PUBLISH until the broker ACKs the previous one,
        # which its delayed ACK can put off by 40 ms: every burst of events would wait.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if self._unreachable_logged:
            log.debug("MQTT broker %s:%d still unreachable", self._config.host, self._config.port)
            return
        self._unreachable_logged = True
        log.warning(
            "MQTT broker %s:%d unreachable; retrying with backoff, events wait in the journal",
            self._config.host,
            self._config.port,
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        with self._progress:
            self._progress.notify_all()
        level = logging.INFO if self._stopping.is_set() else logging.WARNING
        log.log(
            level,
            "MQTT disconnected from %s:%d (%s); %d events pending",
            self._config.host,
            self._config.port,
            reason_code,
            self._journal.backlog(),
        )

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        # With suppress_exceptions, paho reports an exception raised in one of our callbacks
        # only here. The rest is debug chatter (and one misleading "not connected" ERROR
        # after a failed first connect); our own lines cover connects and disconnects.
        if buf.startswith("Caught exception"):
            log.error("MQTT callback failed: %s", buf)
        else:
            _paho_log.debug(buf)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._acks.append((mid, time.monotonic(), time.time()))
        self._journal.wake()

    # -- publisher thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:
                # Keep publishing after e.g. a transient SQLite error; rows stay in the journal.
                log.exception("MQTT publisher step failed")
            self._journal.wait_appended(_IDLE_WAKE_S)

    def _step(self) -> None:
        self._prune_acked()
        with self._progress:
            session = self._session
        if session != self._seen_session:
            # New connection: whatever was in flight may be lost, so start again from the
            # oldest undelivered row (duplicates are allowed, losses are not).
            self._seen_session = session
            self._inflight.clear()
            self._cursor = 0
        while self.connected and not self._stopping.is_set() and len(self._inflight) < MAX_INFLIGHT:
            batch = self._journal.pending(
                self._cursor, min(_BATCH, MAX_INFLIGHT - len(self._inflight))
            )
            if not batch:
                return
            for ev in batch:
                try:
                    info = self._client.publish(
                        f"{self._base}/{ev.topic}",
                        ev.to_json(self._device_id),
                        qos=self._config.qos,
                        retain=ev.retain,
                    )
                except ValueError as exc:
                    # An invalid topic (a wildcard in it) can never be published; kept, it
                    # would stay in the backlog forever.
                    self.rejected += 1
                    log.error(
                        "MQTT: dropping event seq=%d id=%s, cannot publish to %r: %s",
                        ev.seq,
                        ev.id,
                        ev.topic,
                        exc,
                    )
                    self._prune([ev.seq])
                    self._cursor = ev.seq
                    continue
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # connection lost; the next session starts from the top
                self._inflight[info.mid] = _InFlight(ev.seq, time.monotonic(), ev.frame_ts, ev.kind)
                self._cursor = ev.seq

    def _prune_acked(self) -> None:
        seqs = []
        while self._acks:
            mid, acked, acked_wall = self._acks.popleft()
            sent = self._inflight.pop(mid, None)
            # None: the availability message, or a message of an earlier session.
            if sent is None:
                continue
            seqs.append(sent.seq)
            self.ack_latency.observe(acked - sent.sent)
            if sent.frame_ts is not None:
                if sent.kind not in self.event_latency:
                    self.event_latency[sent.kind] = Latency()
                self.event_latency[sent.kind].observe(acked_wall - sent.frame_ts)
        if seqs:
            self._prune(seqs)

    def _prune(self, seqs: list[int]) -> None:
        self._journal.mark_delivered(seqs)
        with self._progress:
            self._progress.notify_all()
