"""File sources on the real sample clip; the latest-frame slot."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from edged.config.camera import SourceConfig
from edged.core.frame import Frame
from edged.core.redact import redact
from edged.sources import pyav
from edged.sources.base import SourceState, StateChange
from edged.sources.capture import Decoded
from edged.sources.factory import is_live, make_source
from edged.sources.slot import FrameSlot
from edged.sources.status import status_event
from tests.paths import CLIP

CLIP_FRAMES = 150
CLIP_FPS = 7.0


class Recorder:
    def __init__(self) -> None:
        self.changes: list[StateChange] = []
        self.done = threading.Event()

    def __call__(self, change: StateChange) -> None:
        self.changes.append(change)
        if change.state in (SourceState.ENDED, SourceState.STOPPED):
            self.done.set()


def drain(
    config: SourceConfig,
    limit: int | None = None,
    admit: Callable[[np.ndarray, float], bool] | None = None,
) -> tuple[list[Frame], Recorder]:
    wake = threading.Condition()
    slot = FrameSlot(wake, block=not is_live(config))
    rec = Recorder()
    source = make_source("cam", config, slot, rec)
    source.admit = admit
    source.start()
    frames: list[Frame] = []
    with wake:
        while not slot.finished and (limit is None or len(frames) < limit):
            frame = slot.take()
            if frame is None:
                assert wake.wait(10), "no frame within 10 s"
                continue
            frames.append(frame)
    source.stop()
    assert source.join(5)
    return frames, rec


def test_fast_file_delivers_every_frame_in_order_then_ends() -> None:
    frames, rec = drain(SourceConfig(uri=str(CLIP), realtime=False))
    assert len(frames) == CLIP_FRAMES
    assert [f.seq for f in frames] == list(range(CLIP_FRAMES))
    pts = np.array([f.pts for f in frames])
    np.testing.assert_allclose(np.diff(pts), 1 / CLIP_FPS, atol=1e-3)
    assert frames[0].image.shape == (576, 768, 3)
    assert [c.state for c in rec.changes] == [
        SourceState.CONNECTING,
        SourceState.STREAMING,
        SourceState.ENDED,
    ]


def test_detect_fps_throttles_on_stream_time() -> None:
    frames, _ = drain(SourceConfig(uri=str(CLIP), realtime=False, detect_fps=3.5))
    assert len(frames) == CLIP_FRAMES // 2
    gaps = np.diff([f.pts for f in frames])
    assert gaps.min() >= 1 / 3.5 - 1e-3


def test_the_gate_sees_the_decoders_luma_and_a_frame_it_refuses_is_never_converted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    converted: list[float | None] = []

    def counting(
        pts: float | None,
        to_bgr: Callable[[], np.ndarray],
        decode_s: float,
        to_luma: Callable[[], np.ndarray | None],
    ) -> Decoded:
        def bgr() -> np.ndarray:
            converted.append(pts)
            return to_bgr()

        return Decoded(pts, bgr, decode_s, to_luma)

    monkeypatch.setattr(pyav, "Decoded", counting)
    seen: list[np.ndarray] = []

    def admit(picture: np.ndarray, media_ts: float) -> bool:
        seen.append(picture.copy())
        return len(seen) % 2 == 1  # every other frame

    frames, _ = drain(SourceConfig(uri=str(CLIP), realtime=False), admit=admit)
    assert len(seen) == CLIP_FRAMES
    with av.open(str(CLIP)) as container:
        first = next(container.decode(video=0))
        assert first.format.name == "yuv420p"
        y = first.to_ndarray()[: first.height]  # yuv420p: the luma rows, then chroma
    assert seen[0].shape == (576, 768) and seen[0].dtype == np.uint8
    np.testing.assert_array_equal(seen[0], y)
    # refused frames keep their numbers (a gap is a skipped frame) and are never converted
    assert [f.seq for f in frames] == list(range(0, CLIP_FRAMES, 2))
    assert converted == [f.pts for f in frames]


def test_realtime_file_is_paced_at_its_own_rate() -> None:
    frames, _ = drain(SourceConfig(uri=str(CLIP), realtime=True), limit=8)
    media = frames[-1].media_ts - frames[0].media_ts
    elapsed = frames[-1].mono_ts - frames[0].mono_ts
    # decode runs ahead of the clock unless pacing holds each frame until it is due
    assert elapsed >= media - 0.02


def test_loop_keeps_the_timeline_going_forward() -> None:
    frames, _ = drain(SourceConfig(uri=str(CLIP), realtime=False, loop=True), limit=CLIP_FRAMES + 5)
    pts = np.array([f.pts for f in frames])
    assert np.all(np.diff(pts) > 0)
    assert abs(pts[CLIP_FRAMES] - pts[CLIP_FRAMES - 1] - 1 / CLIP_FPS) < 1e-3


def retries(uri: str, attempts: int) -> list[StateChange]:
    """Run a source that cannot open until it has retried ``attempts`` times, then stop it."""
    config = SourceConfig(
        uri=uri, realtime=False, reconnect={"floor_s": 0.05, "ceiling_s": 0.4, "jitter": 0.0}
    )
    wake = threading.Condition()
    seen = threading.Condition()
    changes: list[StateChange] = []

    def record(change: StateChange) -> None:
        with seen:
            changes.append(change)
            seen.notify_all()

    source = make_source("cam", config, FrameSlot(wake), record)
    source.start()
    with seen:
        assert seen.wait_for(
            lambda: sum(c.state is SourceState.RECONNECTING for c in changes) >= attempts, 10
        )
    source.stop()
    assert source.join(5)
    assert changes[-1].state is SourceState.STOPPED
    return [c for c in changes if c.state is SourceState.RECONNECTING]


def test_missing_file_retries_with_growing_delay(tmp_path: Path) -> None:
    tries = retries(str(tmp_path / "nope.mp4"), 5)
    assert [c.attempt for c in tries[:5]] == [1, 2, 3, 4, 5]
    assert [c.retry_in_s for c in tries[:5]] == [0.05, 0.1, 0.2, 0.4, 0.4]
    assert "file not found" in tries[0].reason and "nope.mp4" in tries[0].reason


def test_corrupt_file_retries_with_a_clear_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    tries = retries(str(bad), 2)
    assert "cannot open" in tries[0].reason and "bad.mp4" in tries[0].reason


def test_truncated_file_plays_what_it_has_then_ends(tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    data = CLIP.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    frames, rec = drain(SourceConfig(uri=str(cut), realtime=False))
    # faststart puts the index first, so the frames before the cut still decode
    assert 0 < len(frames) < CLIP_FRAMES
    assert rec.changes[-1].state is SourceState.ENDED


def test_latest_slot_drops_and_counts_stale_frames() -> None:
    wake = threading.Condition()
    slot = FrameSlot(wake, block=False)
    stop = threading.Event()
    image = np.zeros((2, 2, 3), np.uint8)
    for seq in range(5):
        slot.put(Frame("cam", seq, float(seq), float(seq), float(seq), image), stop)
    taken = slot.take()
    assert taken is not None and taken.seq == 4
    assert slot.dropped == 4 and slot.take() is None


def test_credentials_are_redacted() -> None:
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/s1") == "rtsp://***@10.0.0.5:554/s1"
    assert redact("rtsp://10.0.0.5/s1") == "rtsp://10.0.0.5/s1"


def test_status_events_say_online_reconnecting_offline_without_credentials() -> None:
    uri = "rtsp://admin:s3cret@10.0.0.5:554/s1"
    retry = StateChange("cam", SourceState.RECONNECTING, "refused", 2, 1.5)
    event = status_event("cam", retry, uri)
    assert event is not None and event.retain and event.topic == "cam/status"
    assert event.kind == "camera_status" and event.camera == "cam"
    assert event.payload == {
        "status": "reconnecting",
        "state": "reconnecting",
        "reason": "refused",
        "attempt": 2,
        "retry_in_s": 1.5,
        "source": "rtsp://***@10.0.0.5:554/s1",
    }
    told: dict[SourceState, str | None] = {}
    for state in SourceState:
        said = status_event("cam", StateChange("cam", state), uri)
        told[state] = None if said is None else said.payload["status"]
    assert told == {
        SourceState.CONNECTING: None,
        SourceState.STREAMING: "online",
        SourceState.STALLED: None,
        SourceState.RECONNECTING: "reconnecting",
        SourceState.ENDED: "offline",
        SourceState.STOPPED: "offline",
    }
