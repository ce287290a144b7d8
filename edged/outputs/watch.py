"""``edged events``: subscribe to a broker and print edged's messages as they come.

Readable lines by default (time, topic below the prefix, kind, the gist), or ``--json``: one
JSON object per message, ``{"topic", "retained", "payload"}``, where ``payload`` is the
parsed event, the text (availability), or ``{"jpeg_bytes": N}`` (snapshots).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from edged.config.events import MqttConfig
from edged.outputs.mqtt import new_client

ENVELOPE = ("v", "seq", "id", "ts", "frame_ts", "device", "camera", "kind")


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retained: bool


def decode(payload: bytes) -> Any:
    """The parsed JSON, else the text, else (a picture) its size."""
    try:
        return json.loads(payload)
    except ValueError:
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return {"jpeg_bytes": len(payload)}


def as_json(msg: Message) -> str:
    return json.dumps(
        {"topic": msg.topic, "retained": msg.retained, "payload": decode(msg.payload)}
    )


def _who(p: dict[str, Any]) -> str:
    return f"{p.get('label', '?')} #{p.get('track_id', '?')}"


def gist(kind: str, p: dict[str, Any]) -> str:
    """A few words on what an event says."""
    if kind == "object":
        after = p.get("after") or {}
        zones = ",".join(after.get("zones", [])) or "-"
        extra = f" ({','.join(p['changed'])})" if p.get("changed") else ""
        return f"{p.get('type')} {_who(after)} score {after.get('top_score')} zones {zones}{extra}"
    if kind == "line_crossing":
        return f"{p.get('line')} {p.get('direction')} {_who(p)}"
    if kind in ("zone_enter", "zone_exit"):
        return f"{p.get('zone')} {kind[5:]} {_who(p)} dwell {p.get('dwell_s')}s"
    if kind == "zone_occupancy":
        return f"{p.get('zone')} total {p.get('total')} {json.dumps(p.get('counts', {}))}"
    if kind == "line_totals":
        return f"{p.get('line')} in {p.get('in_total')} out {p.get('out_total')}"
    if kind == "alert":
        return f"{p.get('alert')} {p.get('state')} {p.get('subject')}"
    if kind == "alerts_active":
        return f"{p.get('alert')} {p.get('active')} active"
    if kind == "camera_status":
        reason = f" ({p['reason']})" if p.get("reason") else ""
        return f"{p.get('status')}{reason}"
    if kind == "overflow":
        return f"{p.get('dropped')} dropped, {p.get('refused')} refused ({p.get('policy')})"
    if kind == "stats":
        return f"backlog {p.get('backlog')}"
    rest = {k: v for k, v in p.items() if k not in ENVELOPE}
    return json.dumps(rest, separators=(",", ":"))


def readable(msg: Message, prefix: str) -> str:
    topic = msg.topic.removeprefix(prefix)
    body = decode(msg.payload)
    if isinstance(body, dict) and "kind" in body:
        when = time.strftime("%H:%M:%S", time.localtime(body.get("ts", time.time())))
        ms = int((body.get("ts", 0) % 1) * 1000)
        kind = body["kind"]
        return f"{when}.{ms:03d} {topic} {kind} seq={body.get('seq')} {gist(kind, body)}"
    now = time.strftime("%H:%M:%S")
    shown = f"<jpeg {body['jpeg_bytes']} bytes>" if isinstance(body, dict) else str(body)
    return f"{now} {topic} {shown}{' (retained)' if msg.retained else ''}"


def filter_problem(topic: str) -> str | None:
    """Why ``topic`` is not an MQTT topic filter a broker takes, or None: ``#`` only as the
    whole last level, ``+`` only as a whole level, not empty, no NUL, at most 65535 bytes."""
    if not topic:
        return "a topic filter must not be empty"
    if "\0" in topic:
        return "a topic filter must not contain a NUL character"
    if len(topic.encode("utf-8")) > 65535:
        return "a topic filter is at most 65535 bytes"
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be the whole last level (a/b/#)"
        if "+" in level and level != "+":
            return "'+' must be a whole level (a/+/c)"
    return None


class Watcher:
    """Subscribes to ``topics`` and hands every message to ``on_message`` (paho's thread)."""

    def __init__(
        self, config: MqttConfig, topics: list[str], on_message: Callable[[Message], None]
    ) -> None:
        self.topics = topics
        self.subscribed = threading.Event()
        self.failed: str | None = None
        self._client = new_client(config, "")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self.subscribed.set()
        self._client.on_message = lambda c, u, m: on_message(
            Message(m.topic, bytes(m.payload), bool(m.retain))
        )
        self._config = config

    def _on_connect(self, client: mqtt.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            self.failed = f"connection refused: {rc}"
            self.subscribed.set()
            return
        try:
            client.subscribe([(t, 1) for t in self.topics])
        except ValueError as exc:
            # on paho's thread: say so at once rather than leave run() waiting for a SUBACK
            self.failed = f"cannot subscribe to {', '.join(self.topics)}: {exc}"
            self.subscribed.set()

    def start(self) -> None:
        self._client.connect(self._config.host, self._config.port, self._config.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def run(
    config: MqttConfig,
    topics: list[str],
    as_json_lines: bool,
    count: int | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print until SIGINT/SIGTERM (or ``count`` messages); the exit code."""
    done = threading.Event()
    seen = 0
    closed = False
    lock = threading.Lock()
    prefix = f"{config.topic_prefix}/"

    def show(msg: Message) -> None:
        nonlocal seen, closed
        with lock:
            if done.is_set():
                return
            try:
                out.write((as_json(msg) if as_json_lines else readable(msg, prefix)) + "\n")
                out.flush()
            except BrokenPipeError:
                # on paho's thread: the main thread stops and re-raises it for the CLI
                closed = True
                done.set()
                return
            seen += 1
            if count is not None and seen >= count:
                done.set()

    watcher = Watcher(config, topics, show)
    try:
        watcher.start()
    except OSError as exc:
        print(f"error: cannot reach the broker {config.host}:{config.port}: {exc}", file=err)
        return 1
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    if not watcher.subscribed.wait(10) or watcher.failed:
        print(f"error: {watcher.failed or 'no subscription within 10 s'}", file=err)
        watcher.stop()
        return 1
    print(f"subscribed to {', '.join(topics)} on {config.host}:{config.port}", file=err)
    err.flush()
    done.wait()
    watcher.stop()
    if closed:
        raise BrokenPipeError("the output was closed (edged events | head)")
    return 0
