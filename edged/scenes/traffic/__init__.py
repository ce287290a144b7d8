"""Traffic: per-lane vehicle counts by class and direction, speeds on the road plane, and
wrong-way, stopped-vehicle, congestion and speeding alerts.

By job: ``identity`` (which tracks are one vehicle: duplicate boxes merged, broken tracks
stitched), ``passages`` (lanes, each vehicle's passage through one, counts and totals),
``alerts`` (wrong way, stopped, speeding, congestion) and ``scene`` (``Traffic``, which runs
them in that order each frame); ``state`` holds what they share.
"""

from edged.scenes.traffic.scene import Traffic

__all__ = ["Traffic"]
