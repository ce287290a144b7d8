"""Publishes the journal to an MQTT broker, at least once and in seq order (paho-mqtt 2).

MQTT 5 by default (3.1.1 selectable); a row is pruned on PUBACK (QoS 1), PUBCOMP (QoS 2), or
once written (QoS 0): paho's ``on_publish`` fires at exactly those points.

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
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edged.config.events import MqttConfig, TlsConfig
from edged.core.latency import Latency
from edged.outputs.journal import Journal
from edged.outputs.mqtt_diagnose import SESSION_TAKEN_OVER, TakeoverWatch, tls_failure

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


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed: paho reports a
    failed connect (refused, TLS handshake error) to ``on_connect_fail`` without the reason."""

    last_error: OSError | None = None

    def _create_socket(self) -> Any:
        try:
            sock = super()._create_socket()
        except OSError as exc:
            self.last_error = exc
            raise
        self.last_error = None
        return sock


def tls_context(config: MqttConfig) -> ssl.SSLContext:
    assert config.tls is not None
    return client_tls(config.tls)


def client_tls(tls: TlsConfig) -> ssl.SSLContext:
    """A client's TLS context: the CA (or the system's), an optional client certificate."""
    context = ssl.create_default_context(cafile=None if tls.ca is None else str(tls.ca))
    if tls.cert is not None:
        context.load_cert_chain(str(tls.cert), None if tls.key is None else str(tls.key))
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def new_client(config: MqttConfig, client_id: str) -> _Client:
    """A paho client for ``config``: protocol, credentials and TLS set, not connected."""
    v5 = config.protocol == "5"
    client = _Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # MQTT 5 sets a clean start at connect instead
        clean_session=None if v5 else True,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
    )
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    if config.tls is not None:
        client.tls_set_context(tls_context(config))
        if config.tls.insecure:
            client.tls_insecure_set(True)
            log.warning(
                "MQTT TLS to %s:%d without verifying the broker (tls.insecure: true)",
                config.host,
                config.port,
            )
    return client


class MqttPublisher:
    """Drains a ``Journal`` to ``<prefix>/<device>/<event.topic>`` and keeps the retained
    ``<prefix>/<device>/availability`` (``online``/``offline``, last will ``offline``).

    ``announce`` are retained (topic, payload) messages sent on every connect before
    ``online`` (Home Assistant discovery); ``replace_announce`` changes them while running.
    ``publish_image`` sends a snapshot now if connected, bypassing the journal (pictures are
    best effort; their events are not).
    """

    name = "mqtt"

    def __init__(
        self,
        config: MqttConfig,
        device_id: str,
        journal: Journal,
        announce: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._config = config
        self._device_id = device_id
        self._journal = journal.reader("mqtt")
        self._base = f"{config.topic_prefix}/{device_id}"
        self.availability_topic = f"{self._base}/availability"
        # announce, the topics once announced and no longer (cleared with an empty retained
        # message on every connect, so a clear missed while the broker was down still
        # happens), the version of both and the version the connection has had: guarded by
        # _announce_lock. Only paho's thread (_on_connect) publishes while holding it: paho
        # calls _on_connect holding its own callback lock, which a publish from another
        # thread may take, so a publish under this lock elsewhere could deadlock with it.
        self._announce_lock = threading.Lock()
        self.announce = list(announce)
        self._withdrawn: set[str] = set()
        self._announce_version = 0
        self._announce_sent = 0
        self.rejected = 0
        self._v5 = config.protocol == "5"
        self._last_failure: str | None = None

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
        self._tls_verdicts: dict[str, str | None] = {}
        self.takeover = TakeoverWatch()
        self._last_takeover_log = -float("inf")
        # Filled by the network thread, drained by the publisher thread (deque ops are atomic):
        # (mid, monotonic and wall-clock time of the PUBACK).
        self._acks: collections.deque[tuple[int, float, float]] = collections.deque()
        # Publisher-thread state.
        self._inflight: dict[int, _InFlight] = {}
        # publish() → PUBACK, and the frame's capture → PUBACK per event kind (the age of an
        # event when the broker has it); written by the publisher thread only
        self.ack_latency = Latency()
        self.event_latency: dict[str, Latency] = {}
        self._window = config.max_inflight  # lowered to the broker's Receive Maximum
        self._cursor = 0
        self._seen_session = 0

        self.client_id = config.client_id or f"edged-{device_id}"
        self._client = new_client(config, self.client_id)
        self._client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(
            min_delay=config.reconnect_min_s,  # type: ignore[arg-type]
            max_delay=config.reconnect_max_s,  # type: ignore[arg-type]
        )
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        # A bug in a callback must not kill the network thread; see _on_log.
        self._client.suppress_exceptions = True
        self._client.on_log = self._on_log
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_socket_open = self._on_socket_open
        # State (retained) never expires; a transient event is worth little a day later.
        self._expiry: Properties | None = None
        if self._v5 and config.expiry_s is not None:
            self._expiry = Properties(PacketTypes.PUBLISH)
            self._expiry.MessageExpiryInterval = config.expiry_s

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the current connection."""
        return self._connected.is_set()

    def backlog(self) -> int:
        """Events the broker has not yet acknowledged."""
        return self._journal.backlog()

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
            "MQTT %s connecting to %s:%d%s as %s (%d events pending)",
            self._config.protocol,
            self._config.host,
            self._config.port,
            " over TLS" if self._config.tls is not None else "",
            self.client_id,
            self._journal.backlog(),
        )
        if self._v5:
            self._client.connect_async(
                self._config.host, self._config.port, self._config.keepalive_s, clean_start=True
            )
        else:
            self._client.connect_async(
                self._config.host, self._config.port, self._config.keepalive_s
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
            if isinstance(sock, socket.socket):  # TCP or TLS (edged uses no websockets)
                with contextlib.suppress(OSError):  # already closed by the network thread
                    sock.shutdown(socket.SHUT_RDWR)
        # After a shutdown nothing can be sent any more; this just ends paho's loop at once.
        self._client.disconnect()
        self._client.loop_stop()
        backlog = self._journal.backlog()
        if backlog:
            log.warning("MQTT publisher stopped with %d events still in the journal", backlog)

    def publish_image(self, topic: str, jpeg: bytes, event_id: str) -> bool:
        """Publish a snapshot to ``<prefix>/<device>/<topic>`` (retained) if connected; the
        event's id rides along as an MQTT 5 user property. False otherwise."""
        if not self.connected:
            return False
        props = None
        if self._v5:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = ("event_id", event_id)
        info = self._client.publish(
            f"{self._base}/{topic}",
            jpeg,
            qos=min(self._config.qos, 1),
            retain=True,
            properties=props,
        )
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def replace_announce(self, announce: Sequence[tuple[str, str]]) -> None:
        """Announce ``announce`` from now on instead (the publisher thread sends it soon if
        connected, else the next connect does); each topic announced before but not in it
        gets an empty retained payload, which deletes the entity in Home Assistant."""
        new = list(announce)
        with self._announce_lock:
            if new == self.announce:
                return
            kept = {topic for topic, _ in new}
            self._withdrawn = (self._withdrawn | {t for t, _ in self.announce}) - kept
            self.announce = new
            self._announce_version += 1
        self._journal.wake()

    def _announcements(self) -> list[tuple[str, str]]:
        """The clears, then the announcements (``_announce_lock`` held)."""
        return [(topic, "") for topic in sorted(self._withdrawn)] + self.announce

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
        self.takeover.connected()
        self._unreachable_logged = False
        self._last_failure = None
        # An MQTT 5 broker states how many QoS 1/2 messages it takes in flight; more are a
        # protocol error it may answer by stalling (Mosquitto does, for QoS 2). Two stay free
        # for availability and snapshots.
        receive_max = getattr(properties, "ReceiveMaximum", None)
        self._window = self._config.max_inflight
        if receive_max is not None:
            self._window = max(1, min(self._window, receive_max - 2))
        with self._announce_lock:
            for topic, payload in self._announcements():
                client.publish(topic, payload, qos=1, retain=True)
            self._announce_sent = self._announce_version
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
        error = self._client.last_error
        if self._config.tls is not None and error is not None:
            # the probe behind it runs once per kind of error, not on every retry
            key = f"{type(error).__name__}: {error}"
            if key not in self._tls_verdicts:
                self._tls_verdicts[key] = tls_failure(self._config.host, self._config.port, error)
            what = self._tls_verdicts[key]
            if what is not None:
                self._report_failure(what)
                return
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
        said = flags.is_disconnect_packet_from_server and reason_code.value == SESSION_TAKEN_OVER
        if not self._stopping.is_set() and self.takeover.dropped(said):
            self._taken_over()
            return
        level = logging.INFO if self._stopping.is_set() else logging.WARNING
        log.log(
            level,
            "MQTT disconnected from %s:%d (%s); %d events pending",
            self._config.host,
            self._config.port,
            reason_code,
            self._journal.backlog(),
        )

    def _taken_over(self) -> None:
        now = time.monotonic()
        if now - self._last_takeover_log < 60:
            log.debug("MQTT session taken over again (%d so far)", self.takeover.takeovers)
            return
        self._last_takeover_log = now
        log.error(
            "MQTT session taken over by another client with the same client id %r: the broker"
            " %s:%d closes edged's connection right after accepting it (%d times so far). Is a"
            " second edged running with device_id %r? Give each its own device_id (or"
            " mqtt.client_id); until then delivery stalls and events wait in the journal",
            self.client_id,
            self._config.host,
            self._config.port,
            self.takeover.takeovers,
            self._device_id,
        )

    def _report_failure(self, what: str) -> None:
        """An error the operator must fix (a certificate, a CA): logged once as an error,
        then at debug level while it repeats with every reconnect."""
        if what == self._last_failure:
            log.debug("MQTT %s:%d: %s", self._config.host, self._config.port, what)
            return
        self._last_failure = what
        log.error(
            "MQTT connection to %s:%d failed: %s; retrying with backoff, events wait in the"
            " journal",
            self._config.host,
            self._config.port,
            what,
        )

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        # With suppress_exceptions, paho reports an exception raised in one of our callbacks
        # only here. A broker that rejects our client certificate (TLS 1.3 checks it after
        # the handshake) shows up here too, as a failed read. The rest is debug chatter (and
        # one misleading "not connected" ERROR after a failed first connect); our own lines
        # cover connects and disconnects.
        if buf.startswith("Caught exception"):
            log.error("MQTT callback failed: %s", buf)
        elif "[SSL" in buf:
            reason = buf.removeprefix("failed to receive on socket: ")
            self._report_failure(
                f"the broker ended the TLS session: {reason}"
                " (does it trust the CA that signed our client certificate?)"
            )
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
        if self.connected:
            self._announce_changes()
        with self._progress:
            session = self._session
        if session != self._seen_session:
            # New connection: whatever was in flight may be lost, so start again from the
            # oldest undelivered row (duplicates are allowed, losses are not), after the
            # age bound has dropped what is too old to send.
            self._seen_session = session
            self._inflight.clear()
            self._cursor = 0
            self._journal.expire()
        while self.connected and not self._stopping.is_set() and len(self._inflight) < self._window:
            batch = self._journal.pending(
                self._cursor, min(_BATCH, self._window - len(self._inflight))
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
                        properties=None if ev.retain else self._expiry,
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

    def _announce_changes(self) -> None:
        """Send the announcements if ``replace_announce`` changed them since the connection
        had them. Sent outside the lock (see ``__init__``): should ``_on_connect`` send a newer
        version meanwhile, this older one marks itself sent and the next step sends again, so
        the newest always goes out last."""
        with self._announce_lock:
            if self._announce_sent == self._announce_version:
                return
            version, messages = self._announce_version, self._announcements()
        for topic, payload in messages:
            info = self._client.publish(topic, payload, qos=1, retain=True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # connection lost; the next connect sends them all
        with self._announce_lock:
            self._announce_sent = version

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
