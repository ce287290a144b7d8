"""The RTSP test server itself (tests/rtsp_server.py via tests/rtsp.py), checked with PyAV, the
client the daemon uses: it serves the clip's frames at the clip's rate over TCP and UDP, it can
be stopped or killed under a client and restarted on the same URL, and short stream probing
makes opens fast."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import av.container
import pytest

from tests.paths import CLIP
from tests.rtsp import RtspServer, gst_rtsp_available

WIDTH, HEIGHT, FPS = 768, 576, 7  # samples/vtest.mp4
READ_TIMEOUT = 5.0
SHORT_PROBE = {"analyzeduration": "300000", "probesize": "500000"}


@pytest.fixture(scope="module")
def rtsp_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the servers of this module keep their prepared streams (made once) and logs."""
    return tmp_path_factory.mktemp("rtsp")


def make_server(workdir: Path, keyframe_interval: float | None = 1.0) -> RtspServer:
    """A started server; fails (never skips) where GStreamer's RTSP server is missing."""
    reason = gst_rtsp_available()
    if reason is not None:
        pytest.fail(reason)
    server = RtspServer(CLIP, workdir, keyframe_interval=keyframe_interval)
    server.start()
    return server


@pytest.fixture
def rtsp_server(rtsp_workdir: Path) -> Iterator[RtspServer]:
    """A running server of this test's own, serving the clip with an IDR frame every second."""
    server = make_server(rtsp_workdir)
    yield server
    server.stop()


def open_stream(
    url: str, transport: str = "tcp", short_probe: bool = True
) -> av.container.InputContainer:
    options = {"rtsp_transport": transport, **(SHORT_PROBE if short_probe else {})}
    return av.open(url, options=options, timeout=(READ_TIMEOUT, READ_TIMEOUT))


def read_frames(
    container: av.container.InputContainer, count: int
) -> list[tuple[float, av.VideoFrame]]:
    """The next ``count`` decoded frames, each with the monotonic time it came out."""
    frames: list[tuple[float, av.VideoFrame]] = []
    for frame in container.decode(video=0):
        frames.append((time.monotonic(), frame))
        if len(frames) == count:
            break
    return frames


def assert_stream_ends(container: av.container.InputContainer, within: float) -> float:
    """Decode until the stream ends or fails; it must do so within ``within`` seconds."""
    start = time.monotonic()
    try:
        for _ in container.decode(video=0):
            assert time.monotonic() - start < within, "frames keep coming from a dead server"
    except (av.error.FFmpegError, OSError):
        pass  # a failed read is as good an end as an end of stream
    elapsed = time.monotonic() - start
    assert elapsed < within, f"the stream took {elapsed:.1f}s to end"
    return elapsed


@pytest.mark.parametrize("keyframe_interval", [1.0, None], ids=["idr-1s", "clip-bitstream"])
def test_tcp_client_gets_clip_frames_at_clip_rate(
    rtsp_workdir: Path, keyframe_interval: float | None
) -> None:
    server = make_server(rtsp_workdir, keyframe_interval)
    try:
        with open_stream(server.url) as container:
            frames = read_frames(container, 26)
    finally:
        server.stop()
    assert len(frames) == 26
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for _, f in frames)
    pts = [f.pts for _, f in frames if f.pts is not None]
    assert len(pts) >= 20 and pts == sorted(set(pts)), f"presentation times not increasing: {pts}"
    # The first few frames come in a burst (those queued while the client set up); after that
    # 20 intervals at 7 fps take 2.9 s, where an unpaced server would send them in milliseconds.
    span = frames[25][0] - frames[5][0]
    fps = 20 / span
    print(
        f"TCP: frames 5..25 in {span:.2f}s = {fps:.2f} fps (clip {FPS} fps);"
        f" frames 0..5 in {frames[5][0] - frames[0][0]:.2f}s"
    )
    assert 5 <= fps <= 9, f"{fps:.1f} fps: the server does not pace at the clip's {FPS} fps"


def test_udp_client_gets_clip_frames(rtsp_server: RtspServer) -> None:
    with open_stream(rtsp_server.url, transport="udp") as container:
        frames = read_frames(container, 10)
    assert len(frames) == 10
    assert all((f.width, f.height) == (WIDTH, HEIGHT) for _, f in frames)


def test_second_client_joins_the_shared_stream_quickly(rtsp_server: RtspServer) -> None:
    """A client joining mid-stream waits for the next IDR frame: at most a second here."""
    with open_stream(rtsp_server.url) as first:
        assert len(read_frames(first, 10)) == 10
        start = time.monotonic()
        with open_stream(rtsp_server.url) as second:
            assert len(read_frames(second, 1)) == 1
            joined = time.monotonic() - start
        assert len(read_frames(first, 5)) == 5
    print(f"second client: first frame {joined:.2f}s after it began to open")
    assert joined < READ_TIMEOUT


def test_stop_ends_client_stream_and_restart_serves_again(rtsp_server: RtspServer) -> None:
    with open_stream(rtsp_server.url) as container:
        assert len(read_frames(container, 1)) == 1
        rtsp_server.stop()
        assert rtsp_server.returncode == 0, f"unclean exit on SIGTERM:\n{rtsp_server.log()}"
        assert not rtsp_server.running
        ended = assert_stream_ends(container, within=READ_TIMEOUT + 2)
    print(f"stop: the client's stream ended {ended:.2f}s after the server exited")
    url = rtsp_server.url
    rtsp_server.start()
    assert rtsp_server.url == url
    with open_stream(rtsp_server.url) as container:
        assert len(read_frames(container, 5)) == 5


def test_kill_ends_client_stream_and_restart_serves_again(rtsp_server: RtspServer) -> None:
    with open_stream(rtsp_server.url) as container:
        assert len(read_frames(container, 1)) == 1
        rtsp_server.kill()
        assert not rtsp_server.running
        ended = assert_stream_ends(container, within=READ_TIMEOUT + 2)
    print(f"kill: the client's stream ended {ended:.2f}s after the server died")
    rtsp_server.start()
    with open_stream(rtsp_server.url) as container:
        assert len(read_frames(container, 5)) == 5


def test_start_reports_why_the_server_failed(rtsp_workdir: Path) -> None:
    reason = gst_rtsp_available()
    if reason is not None:
        pytest.fail(reason)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        server = RtspServer(CLIP, rtsp_workdir, port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="cannot listen"):
            server.start()
    assert not server.running


def test_open_time_short_probe_vs_default(
    rtsp_server: RtspServer, record_property: Callable[[str, object], None]
) -> None:
    """Reports how long ``av.open`` takes with 0.3 s probing and with FFmpeg's default."""
    opens: dict[str, float] = {}
    for name, short in (("short", True), ("default", False)):
        start = time.monotonic()
        with open_stream(rtsp_server.url, short_probe=short) as container:
            opens[name] = time.monotonic() - start
            assert len(read_frames(container, 1)) == 1
        record_property(f"open_s_{name}_probe", round(opens[name], 2))
    print(
        f"av.open: {opens['short']:.2f}s with analyzeduration 0.3s,"
        f" {opens['default']:.2f}s with the default probing"
    )
    assert opens["short"] < opens["default"]
