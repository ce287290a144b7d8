"""What ``/healthz`` answers: is every camera delivering processed frames (or done)?"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edged.core.redact import redact_text
from edged.pipeline import CameraRuntime, Pipeline
from edged.sources.base import SourceState

# a file that has played to its end is done, not broken
DONE = {SourceState.ENDED}


@dataclass(frozen=True, slots=True)
class CameraHealth:
    ok: bool
    state: str
    reason: str
    fps: float
    last_frame_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "state": self.state,
            "reason": self.reason,
            "fps": round(self.fps, 2),
            "last_frame_age_s": (
                None if self.last_frame_age_s is None else round(self.last_frame_age_s, 2)
            ),
        }


def camera_health(cam: CameraRuntime, stale_s: float) -> CameraHealth:
    now = time.monotonic()
    # a frame the motion gate skipped as still was dealt with as much as an analysed one
    last = cam.last_frame
    age = None if last is None else now - last
    state = cam.source.state
    fps = cam.process_rate.rate()

    def verdict(ok: bool, reason: str) -> CameraHealth:
        return CameraHealth(ok, state.value, reason, fps, age)

    if cam.failed is not None:
        return verdict(False, f"analytics failed: {cam.failed}")
    if cam.source.failed is not None:
        return verdict(False, f"source failed: {redact_text(str(cam.source.failed))}")
    if state in DONE:
        return verdict(True, "ended")
    if state is not SourceState.STREAMING:
        return verdict(False, cam.state_reason or state.value)
    detect_fps = cam.config.source.detect_fps
    limit = max(stale_s, 3.0 / detect_fps) if detect_fps else stale_s
    # a camera that has just (re)started streaming gets the same grace as a stalled one
    since = max(cam.state_since, last or 0.0)
    if now - since > limit:
        return verdict(False, f"no frame processed for {now - since:.1f} s")
    return verdict(True, "")


def health(pipeline: Pipeline, stale_s: float) -> tuple[bool, dict[str, Any]]:
    """(all cameras fine and events kept, the JSON body): each camera's state, the journal's,
    and why they are not fine. A journal that cannot be written fails the check: the
    cameras run, but what they see is lost."""
    cams = {name: camera_health(cam, stale_s) for name, cam in pipeline.cameras.items()}
    journal = pipeline.sink.journal.state()
    reasons = [f"{name}: {c.reason}" for name, c in cams.items() if not c.ok]
    if journal["error"] is not None:
        reasons.append(f"journal: cannot write: {journal['error']}")
    ok = not reasons
    body: dict[str, Any] = {
        "status": "ok" if ok else "unhealthy",
        "cameras": {name: c.as_dict() for name, c in cams.items()},
        "journal": journal,
    }
    if not ok:
        body["reasons"] = reasons
    return ok, body
