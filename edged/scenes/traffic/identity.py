"""Vehicle identity: which tracks are one vehicle.

The detector may report one vehicle twice (a ``car`` box and a ``truck`` box); the tracks of
boxes that overlap by ``merge_iou`` for a few frames are merged into one vehicle, whose label
is the score-weighted vote of all its observations. A new track that appears where a vehicle
lost a moment ago would be by now continues that vehicle (its track was broken by missed
detections). A vehicle without tracks ends once it has not been seen for ``stitch_s``.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from edged.analytics.speed import Motion, TrackSpeeds
from edged.analytics.tracked import TrackedFrame
from edged.config.scene_traffic import TrafficConfig
from edged.core.boxes import iou_matrix
from edged.scenes.traffic.state import Lane, Passage, Vehicle

MERGE_FRAMES = 3  # frames two tracks must overlap by merge_iou before they are one vehicle


class Vehicles:
    def __init__(self, config: TrafficConfig, speeds: TrackSpeeds) -> None:
        self.config = config
        self.speeds = speeds
        self.by_id: dict[int, Vehicle] = {}
        self.of_track: dict[int, int] = {}  # track id → vehicle id
        self.overlaps: dict[tuple[int, int], int] = {}  # vehicle pair → frames overlapping

    def arrive(self, tids: list[int], idx: list[int], now: float) -> list[int]:
        """A vehicle for each track at ``idx`` not seen before; their ids."""
        new: list[int] = []
        for i in idx:
            if tids[i] not in self.of_track:
                self.of_track[tids[i]] = tids[i]
                self.by_id[tids[i]] = Vehicle(tids[i], {tids[i]}, last_seen=now, history={tids[i]})
                new.append(tids[i])
        return new

    def merge_duplicates(self, boxes: np.ndarray, tracks: list[int]) -> list[tuple[int, int]]:
        """Merge the vehicles of tracks whose boxes (N×4, one per track) overlapped by
        ``merge_iou`` for ``MERGE_FRAMES`` frames; the (kept, gone) vehicle pairs, in order."""
        merge_iou = self.config.merge_iou
        if merge_iou is None or len(tracks) < 2:
            return []
        merged: list[tuple[int, int]] = []
        iou = iou_matrix(boxes, boxes)
        for a, b in zip(*np.nonzero(np.triu(iou >= merge_iou, 1)), strict=True):
            va, vb = self.of_track[tracks[a]], self.of_track[tracks[b]]
            if va == vb:
                continue
            pair = (min(va, vb), max(va, vb))
            self.overlaps[pair] = self.overlaps.get(pair, 0) + 1
            if self.overlaps[pair] >= MERGE_FRAMES:
                self.merge(*pair)
                merged.append(pair)
        return merged

    def merge(self, keep: int, gone: int) -> None:
        """Vehicle ``gone`` is ``keep``: its tracks, votes and counts join ``keep``'s."""
        a, b = self.by_id[keep], self.by_id.pop(gone)
        a.tracks |= b.tracks
        a.history |= b.history | b.tracks
        for t in b.tracks:
            self.of_track[t] = keep
        for label, w in b.votes.items():
            a.votes[label] = a.votes.get(label, 0.0) + w
        a.counted_lanes |= b.counted_lanes
        a.counted_groups |= b.counted_groups
        a.last_seen = max(a.last_seen, b.last_seen)
        self.overlaps = {k: n for k, n in self.overlaps.items() if gone not in k}

    def observe(self, tf: TrackedFrame, idx: list[int], tids: list[int]) -> dict[int, int]:
        """Count this frame's votes for each vehicle's label; one observation per vehicle:
        vehicle id → the index of its oldest track seen in this frame."""
        seen: dict[int, int] = {}
        for i in idx:
            v = self.by_id[self.of_track[tids[i]]]
            label = tf.label(i)
            v.votes[label] = v.votes.get(label, 0.0) + float(tf.objects.score[i])
            if v.vid not in seen or tids[i] < tids[seen[v.vid]]:
                seen[v.vid] = i
        return seen

    def motion(self, v: Vehicle, tid: int) -> Motion | None:
        """The vehicle's motion: its observed track's, else its oldest track's that has one."""
        m = self.speeds.motion(tid)
        if m is not None:
            return m
        known = [mm for t in sorted(v.tracks) if (mm := self.speeds.motion(t)) is not None]
        return known[0] if known else None

    def stitch(
        self,
        vid: int,
        seen: dict[int, int],
        lanes: dict[str, Lane],
        inside: dict[str, np.ndarray],
        ground: np.ndarray,
        passages: Collection[Passage],
        now: float,
    ) -> int | None:
        """The older vehicle that new vehicle ``vid`` continues (merged into it), if any: one
        lost in the same lane, up to ``stitch_s`` ago, whose passage predicts it within
        ``stitch_m`` of where ``vid`` appeared."""
        cfg = self.config
        if cfg.stitch_s <= 0:
            return None
        i = seen[vid]
        best: tuple[float, int] | None = None
        for name, lane in lanes.items():
            if not inside[name][i]:
                continue
            s = float(ground[i] @ lane.direction)
            for p in passages:
                gap = now - p.last_seen
                if p.lane != name or p.vid in seen or p.outside_since is not None:
                    continue
                if not 0 < gap <= cfg.stitch_s:
                    continue
                miss = abs(s - (p.s + (p.v_along or 0.0) * gap))
                if miss <= cfg.stitch_m and (best is None or miss < best[0]):
                    best = (miss, p.vid)
        if best is None or best[1] >= vid:
            return None
        self.merge(best[1], vid)
        return best[1]

    def release(self, ended: list[int]) -> None:
        """Tracks that ended leave their vehicle."""
        for tid in ended:
            vid = self.of_track.pop(tid, None)
            if vid is not None:
                self.by_id[vid].tracks.discard(tid)

    def lost(self, now: float) -> list[int]:
        """Vehicles without tracks that have not been seen for ``stitch_s``: gone for good."""
        stitch_s = self.config.stitch_s
        return [
            vid for vid, v in self.by_id.items() if not v.tracks and now - v.last_seen >= stitch_s
        ]

    def forget(self, vid: int) -> None:
        del self.by_id[vid]
        self.overlaps = {k: n for k, n in self.overlaps.items() if vid not in k}

    def clear(self) -> None:
        """The stream ended: no track continues."""
        self.by_id.clear()
        self.of_track.clear()
