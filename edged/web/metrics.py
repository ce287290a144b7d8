"""Prometheus metrics, read from the pipeline's own counters and meters at scrape time
(nothing is counted twice on the hot path)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from edged.core.latency import Latency
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.output import Output
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline

UP_STATES = {"streaming"}
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class PipelineCollector(Collector):
    def __init__(
        self,
        pipeline: Pipeline,
        sink: EventSink,
        publisher: MqttPublisher | None = None,
        outputs: Sequence[Output] = (),
    ) -> None:
        self._pipeline = pipeline
        self._sink = sink
        self._publisher = publisher
        self._outputs = list(outputs)

    def collect(self) -> Iterator[Metric]:
        cameras = dict(self._pipeline.cameras)
        stats = {name: cam.stats() for name, cam in cameras.items()}
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
        skipped = CounterMetricFamily(
            "edged_frames_skipped",
            "Frames taken but not detected: reason still (motion gating: nothing moved or was "
            "tracked)",
            labels=["camera", "reason"],
        )
        for camera, st in stats.items():
            skipped.add_metric([camera, "still"], st.skipped)
        yield skipped
        up = GaugeMetricFamily("edged_source_up", "1 while the camera streams", labels=["camera"])
        tracks = GaugeMetricFamily("edged_tracks", "Live confirmed tracks", labels=["camera"])
        fps_in = GaugeMetricFamily(
            "edged_fps_in", "Frames decoded per second, last 5 s", labels=["camera"]
        )
        fps = GaugeMetricFamily(
            "edged_fps_processed", "Frames processed per second, last 5 s", labels=["camera"]
        )
        for camera, st in stats.items():
            up.add_metric([camera], 1.0 if st.state in UP_STATES else 0.0)
            tracks.add_metric([camera], st.tracks)
            fps_in.add_metric([camera], cameras[camera].source.decode_rate.rate())
            fps.add_metric([camera], cameras[camera].process_rate.rate())
        yield from (up, tracks, fps_in, fps)
        stages = HistogramMetricFamily(
            "edged_stage_seconds",
            "Seconds a frame spends in each stage (inference: its batch's engine run)",
            labels=["camera", "stage"],
        )
        for camera, cam in cameras.items():
            for stage, latency in cam.stages.items():
                _add_latency(stages, [camera, stage], latency)
        yield stages
        batches = HistogramMetricFamily(
            "edged_inference_batch_size", "Frames per engine run", labels=["model"]
        )
        for model, worker in self._pipeline.workers.items():
            sizes = dict(worker.batch_sizes)
            cumulative = [
                (repr(float(b)), float(sum(n for s, n in sizes.items() if s <= b)))
                for b in BATCH_BUCKETS
            ]
            cumulative.append(("+Inf", float(sum(sizes.values()))))
            batches.add_metric([model], cumulative, float(sum(s * n for s, n in sizes.items())))
        yield batches
        yield from self._events()

    def _events(self) -> Iterator[Metric]:
        events = CounterMetricFamily("edged_events", "Events journaled", labels=["kind"])
        for kind, n in sorted(dict(self._sink.counts).items()):
            events.add_metric([kind], n)
        yield events
        yield GaugeMetricFamily(
            "edged_journal_backlog",
            "Events not yet acknowledged by the broker",
            self._sink.journal.backlog(),
        )
        yield from self._per_output()
        if self._publisher is None:
            return
        yield GaugeMetricFamily(
            "edged_mqtt_connected", "1 while the broker connection is up", self._publisher.connected
        )
        yield CounterMetricFamily(
            "edged_mqtt_session_takeovers",
            "Broker sessions ended by another client with the same client id",
            self._publisher.takeover.takeovers,
        )
        publish = HistogramMetricFamily(
            "edged_publish_seconds", "Seconds from publishing an event to the broker's PUBACK"
        )
        _add_latency(publish, [], self._publisher.ack_latency)
        yield publish
        age = HistogramMetricFamily(
            "edged_event_latency_seconds",
            "Seconds from the capture of the frame an event is about to its PUBACK",
            labels=["kind"],
        )
        for kind, latency in sorted(list(self._publisher.event_latency.items())):
            _add_latency(age, [kind], latency)
        yield age

    def _per_output(self) -> Iterator[Metric]:
        if not self._outputs:
            return
        up = GaugeMetricFamily(
            "edged_output_connected", "1 while the output's engine is reachable", labels=["output"]
        )
        backlog = GaugeMetricFamily(
            "edged_output_backlog", "Events the output has not yet acknowledged", labels=["output"]
        )
        acks = HistogramMetricFamily(
            "edged_output_ack_seconds",
            "Seconds from publishing an event to the output's acknowledgement",
            labels=["output"],
        )
        for output in self._outputs:
            up.add_metric([output.name], float(output.connected))
            backlog.add_metric([output.name], output.backlog())
            _add_latency(acks, [output.name], output.ack_latency)
        yield from (up, backlog, acks)


def _add_latency(family: HistogramMetricFamily, labels: list[str], latency: Latency) -> None:
    family.add_metric(labels, latency.buckets(), latency.sum)
