"""Events from an MQTT 5 shared subscription: collect a batch, commit it, then PUBACK it.

``$share/<group>/<prefix>/+/#`` spreads the events of every device among the workers of the
group. Each worker keeps a persistent session (its ``client_id``, ``clean_start`` off, a
session expiry), and acknowledges by hand (paho's manual ack) only after the commit: what a
crashed worker had not acknowledged stays in its session at the broker and comes again when
it reconnects; the database ignores the ids it already has. Retained messages are not sent
to shared subscriptions (MQTT 5); availability texts and snapshot JPEGs under the prefix
are acknowledged and skipped.

Mosquitto 2.0 does not restore shared subscriptions from its persistence file: after a
broker restart, what the devices publish before the workers have subscribed again reaches
no one of the group, while a plain subscription of a persistent session is restored and
gets it. ``group: null`` subscribes plainly: every worker gets every event (and the retained
state, already stored), and each is stored once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edged.config.store import StoreMqttSource
from edged.outputs.mqtt import client_tls
from edged.store.database import BadEvent, parse
from edged.store.session import Database, Stopped

log = logging.getLogger(__name__)

# a batch is written once this many messages are in or this long after its first
_BATCH_WAIT_S = 0.05
_RECEIVE_MAXIMUM = 1000


class MqttSource:
    def __init__(self, config: StoreMqttSource, db: Database, stop: threading.Event) -> None:
        self._config = config
        self._db = db
        self._stop = stop
        self.connected = threading.Event()
        self.bad = 0
        self.topic = f"{config.topic_prefix}/+/#"
        if config.group is not None:
            self.topic = f"$share/{config.group}/{self.topic}"
        # (mid, qos, payload, topic) from paho's thread to the writer
        self._inbox: queue.Queue[tuple[int, int, bytes, str]] = queue.Queue()
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=config.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if config.username is not None:
            password = config.password.get_secret_value() if config.password else None
            client.username_pw_set(config.username, password)
        if config.tls is not None:
            client.tls_set_context(client_tls(config.tls))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 10)
        self._client = client

    def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._config.session_expiry_s
        props.ReceiveMaximum = _RECEIVE_MAXIMUM
        self._client.connect_async(
            self._config.host, self._config.port, 30, clean_start=False, properties=props
        )
        self._client.loop_start()
        try:
            self._write_batches()
        except Stopped:
            pass
        finally:
            # a clean DISCONNECT keeps the session (and what it has not acked) for next time
            self._client.disconnect()
            self._client.loop_stop()

    def _write_batches(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + _BATCH_WAIT_S
            while len(batch) < self._config.batch:
                try:
                    batch.append(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            events = []
            for _mid, _qos, payload, topic in batch:
                if not _is_event(topic, payload):
                    continue
                try:
                    events.append(parse(payload))
                except BadEvent as exc:
                    self.bad += 1
                    log.error(
                        "store: message on %s is not an edged event (%s); dropped", topic, exc
                    )
            self._db.write(events)
            for mid, qos, _payload, _topic in batch:
                self._client.ack(mid, qos)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("store: MQTT connection refused: %s", reason_code)
            return
        # the session (and its subscription) may be there already; subscribing again is
        # harmless and covers a broker that lost it
        client.subscribe(self.topic, qos=1)
        log.info(
            "store: MQTT connected to %s:%d as %s (session %s), consuming %s",
            self._config.host,
            self._config.port,
            self._config.client_id,
            "resumed" if flags.session_present else "new",
            self.topic,
        )
        self.connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("store: MQTT disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # QoS 0 has nothing to acknowledge; it is stored all the same
        self._inbox.put((msg.mid if msg.qos else 0, msg.qos, bytes(msg.payload), msg.topic))


def _is_event(topic: str, payload: bytes) -> bool:
    """Events are JSON objects; availability is text and snapshots are JPEGs."""
    return payload[:1] == b"{" and "/snapshots/" not in topic
