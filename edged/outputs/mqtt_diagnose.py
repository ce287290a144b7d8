"""What went wrong with the broker, in words an operator can act on. paho reports a TLS client
talking to a plain port as a connection reset, and a session taken over by another client
with the same id (Mosquitto closes the old connection without a DISCONNECT) as "Unspecified
error"; both look like a flaky network and are not."""

from __future__ import annotations

import collections
import socket
import ssl
import time

# MQTT 3.1.1 CONNECT: clean session, keepalive 60 s, an empty client id (the broker assigns
# one, or refuses it with a CONNACK: either way it answered in MQTT)
_PLAIN_CONNECT = bytes.fromhex("100c00044d5154540402003c0000")
_CONNACK = 0x20
_DISCONNECT = bytes.fromhex("e000")
# MQTT 5 DISCONNECT reason code "Session taken over" (brokers that send it: EMQX, HiveMQ,
# newer Mosquitto)
SESSION_TAKEN_OVER = 0x8E


def speaks_plain_mqtt(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether ``host:port`` answers a plain (not TLS) MQTT CONNECT with a CONNACK."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PLAIN_CONNECT)
            answer = sock.recv(4)
            if answer[:1] == bytes([_CONNACK]):
                sock.sendall(_DISCONNECT)
                return True
    except OSError:
        pass  # nothing there, or not MQTT: not a plain MQTT port
    return False


def tls_failure(host: str, port: int, error: OSError) -> str | None:
    """Why a TLS connect failed, or None when ``error`` is no TLS failure (nothing listens,
    no route: the broker is unreachable)."""
    if isinstance(error, ConnectionRefusedError | TimeoutError | socket.gaierror):
        return None
    handshake = isinstance(error, ssl.SSLError | ssl.CertificateError | ConnectionResetError)
    if not handshake:
        return None
    if not isinstance(error, ssl.CertificateError) and speaks_plain_mqtt(host, port):
        return (
            f"TLS handshake failed: {host}:{port} speaks plain MQTT, not TLS (the TLS port is"
            " usually 8883; or drop mqtt.tls to connect in plain text)"
        )
    return f"TLS handshake failed: {error}"


class TakeoverWatch:
    """Tells a session taken over from a network fault. A broker that closes the connection
    again and again moments after it accepted it, while accepting every reconnect at once,
    is closing it for another client with the same client id: ``short_s`` is how short such
    a session is, ``times`` how many within ``window_s`` say so."""

    def __init__(self, short_s: float = 5.0, times: int = 3, window_s: float = 60.0) -> None:
        self.short_s, self.times, self.window_s = short_s, times, window_s
        self.takeovers = 0  # sessions ended by another client, as far as can be told
        self._connected_at: float | None = None
        self._drops: collections.deque[float] = collections.deque()

    def connected(self, now: float | None = None) -> None:
        self._connected_at = time.monotonic() if now is None else now

    def dropped(self, taken_over: bool, now: float | None = None) -> bool:
        """A session ended without edged asking; True when it was (most likely) taken over.
        ``taken_over``: the broker said so (MQTT 5 reason code 0x8E)."""
        now = time.monotonic() if now is None else now
        started, self._connected_at = self._connected_at, None
        if taken_over:
            self.takeovers += 1
            return True
        if started is None or now - started > self.short_s:
            self._drops.clear()
            return False
        self._drops.append(now)
        while self._drops and now - self._drops[0] > self.window_s:
            self._drops.popleft()
        if len(self._drops) >= self.times:
            self.takeovers += 1
            return True
        return False
