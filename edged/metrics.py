"""Prometheus metrics, read from the pipeline's own counters at scrape time (nothing is
counted twice on the hot path)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edged.pipeline import CameraStats

UP_STATES = {"streaming"}


class PipelineCollector(Collector):
    def __init__(
        self,
        cameras: Callable[[], dict[str, CameraStats]],
        events: Callable[[], dict[str, int]],
        backlog: Callable[[], int],
    ) -> None:
        self._cameras = cameras
        self._events = events
        self._backlog = backlog

    def collect(self) -> Iterator[Metric]:
        stats = self._cameras()
        counters = {
            "decoded": ("edged_frames_decoded", "Frames decoded by the source"),
            "delivered": ("edged_frames_delivered", "Frames handed to inference"),
            "processed": ("edged_frames_processed", "Frames detected and analysed"),
            "dropped": ("edged_frames_dropped", "Frames replaced by a newer one before inference"),
            "reconnects": ("edged_source_reconnects", "Reconnection attempts"),
        }
        for field, (name, doc) in counters.items():
            family = CounterMetricFamily(name, doc, labels=["camera"])
            for camera, st in stats.items():
                family.add_metric([camera], getattr(st, field))
            yield family
        up = GaugeMetricFamily("edged_source_up", "1 while the camera streams", labels=["camera"])
        tracks = GaugeMetricFamily("edged_tracks", "Live confirmed tracks", labels=["camera"])
        for camera, st in stats.items():
            up.add_metric([camera], 1.0 if st.state in UP_STATES else 0.0)
            tracks.add_metric([camera], st.tracks)
        yield up
        yield tracks
        events = CounterMetricFamily("edged_events", "Events journaled", labels=["kind"])
        for kind, n in sorted(self._events().items()):
            events.add_metric([kind], n)
        yield events
        yield GaugeMetricFamily(
            "edged_journal_backlog", "Events not yet acknowledged by the broker", self._backlog()
        )
