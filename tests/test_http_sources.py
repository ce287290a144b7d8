"""Network streams other than RTSP, served by the test over HTTP: HLS and MJPEG."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import pytest

from edged.config.camera import SourceConfig
from edged.core.frame import Frame
from edged.sources.base import SourceState, StateChange
from edged.sources.factory import make_source
from edged.sources.slot import FrameSlot
from tests.paths import CLIP

BOUNDARY = "edgedframe"


class Handler(SimpleHTTPRequestHandler):
    """Files from the served folder, and ``/stream.mjpg``: the clip as a multipart MJPEG
    stream, as an IP camera serves it."""

    def do_GET(self) -> None:
        if self.path != "/stream.mjpg":
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
        self.end_headers()
        cap = cv2.VideoCapture(str(CLIP))
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    return
                jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                self.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            cap.release()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def make_hls(folder: Path) -> None:
    """The clip as an HLS playlist of 2 s segments (stream copy)."""
    with (
        av.open(str(CLIP)) as src,
        av.open(
            str(folder / "index.m3u8"),
            "w",
            format="hls",
            options={"hls_time": "2", "hls_list_size": "0", "hls_playlist_type": "vod"},
        ) as dst,
    ):
        video = src.streams.video[0]
        out = dst.add_stream_from_template(video)
        for packet in src.demux(video):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)


def take(uri: str, count: int) -> tuple[list[Frame], list[StateChange]]:
    wake = threading.Condition()
    slot = FrameSlot(wake, block=False)
    changes: list[StateChange] = []
    source = make_source("cam", SourceConfig(uri=uri, open_timeout_s=5), slot, changes.append)
    frames: list[Frame] = []
    source.start()
    try:
        with wake:
            while len(frames) < count:
                frame = slot.take()
                if frame is None:
                    assert wake.wait(10), f"no frame within 10 s: {changes}"
                    continue
                frames.append(frame)
    finally:
        source.stop()
        assert source.join(5)
    return frames, changes


def test_hls_playlist(http_server: str, tmp_path: Path) -> None:
    make_hls(tmp_path)
    frames, changes = take(f"{http_server}/index.m3u8", 30)
    assert frames[0].image.shape == (576, 768, 3)
    assert changes[1].state is SourceState.STREAMING


def test_mjpeg_over_http(http_server: str) -> None:
    frames, _ = take(f"{http_server}/stream.mjpg", 30)
    assert frames[0].image.shape == (576, 768, 3)
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)
