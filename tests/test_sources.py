"""File sources on the real sample clip; the latest-frame slot."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edged.config.camera import SourceConfig
from edged.frame import Frame
from edged.sources.base import SourceState, StateChange, redact
from edged.sources.factory import is_live, make_source
from edged.sources.slot import FrameSlot
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


def drain(config: SourceConfig, limit: int | None = None) -> tuple[list[Frame], Recorder]:
    wake = threading.Condition()
    slot = FrameSlot(wake, block=not is_live(config))
    rec = Recorder()
    source = make_source("cam", config, slot, rec)
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
    assert [c.state for c in rec.changes] == [SourceState.STREAMING, SourceState.ENDED]


def test_detect_fps_throttles_on_stream_time() -> None:
    frames, _ = drain(SourceConfig(uri=str(CLIP), realtime=False, detect_fps=3.5))
    assert len(frames) == CLIP_FRAMES // 2
    gaps = np.diff([f.pts for f in frames])
    assert gaps.min() >= 1 / 3.5 - 1e-3


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


def test_missing_file_stops_with_a_clear_reason(tmp_path: Path) -> None:
    frames, rec = drain(SourceConfig(uri=str(tmp_path / "nope.mp4"), realtime=False))
    assert frames == []
    assert rec.changes[-1].state is SourceState.STOPPED
    assert "file not found" in rec.changes[-1].reason and "nope.mp4" in rec.changes[-1].reason


def test_corrupt_file_stops_with_a_clear_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    frames, rec = drain(SourceConfig(uri=str(bad), realtime=False))
    assert frames == []
    assert rec.changes[-1].state is SourceState.STOPPED
    assert "bad.mp4" in rec.changes[-1].reason


def test_latest_slot_drops_and_counts_stale_frames() -> None:
    wake = threading.Condition()
    slot = FrameSlot(wake, block=False)
    stop = threading.Event()
    image = np.zeros((2, 2, 3), np.uint8)
    for seq in range(5):
        slot.put(Frame("cam", seq, float(seq), float(seq), image), stop)
    taken = slot.take()
    assert taken is not None and taken.seq == 4
    assert slot.dropped == 4 and slot.take() is None


def test_credentials_are_redacted() -> None:
    assert redact("rtsp://admin:s3cret@10.0.0.5:554/s1") == "rtsp://***@10.0.0.5:554/s1"
    assert redact("rtsp://10.0.0.5/s1") == "rtsp://10.0.0.5/s1"
