"""A config reload (SIGHUP) as the smallest set of actions on the running pipeline.

``plan`` compares the running config with the new one, camera by camera:

- a camera whose settings are equal keeps running untouched (same source thread, tracker and
  counters);
- analytics settings (zones, lines, scene, tracker, detection thresholds and classes) are
  applied in place: the source keeps streaming;
- a changed ``source``, ``detect.model``, ``segment`` or ``snapshots`` restarts that camera;
- a changed model (``models.<name>``) loads it again and restarts the cameras that use it;
- cameras that appear start, cameras that disappear (or get ``enabled: false``) stop;
- ``device_id``, ``mqtt``, ``journal``, ``metrics``, ``debug_view`` and ``homeassistant`` are
  not applied: they name where events go or are served, and change only with a restart (a
  log line and the event say so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edged.config import CameraConfig, Config, ConfigError
from edged.core import topics
from edged.core.event import Event
from edged.pipeline import Pipeline

log = logging.getLogger(__name__)

NEEDS_RESTART = ("device_id", "mqtt", "journal", "metrics", "debug_view", "homeassistant")


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{what} {', '.join(names)}"
            for what, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("restarted", self.restarted),
                ("updated", self.updated),
                ("models reloaded", self.models),
                ("not applied until restart", self.needs_restart),
            )
            if names
        ]
        return "; ".join(parts) or "no changes"

    def as_payload(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "removed": self.removed,
            "restarted": self.restarted,
            "updated": self.updated,
            "models": self.models,
            "needs_restart": self.needs_restart,
        }


def _uses(cam: CameraConfig, models: set[str]) -> bool:
    return cam.detect.model in models or (cam.segment is not None and cam.segment.model in models)


def _needs_restart(old: CameraConfig, new: CameraConfig) -> bool:
    return (old.source, old.detect.model, old.segment, old.snapshots) != (
        new.source,
        new.detect.model,
        new.segment,
        new.snapshots,
    )


def plan(old: Config, new: Config) -> ReloadPlan:
    models = sorted(
        m for m in old.models.keys() & new.models.keys() if old.models[m] != new.models[m]
    )
    reloaded = set(models)
    before = {n: c for n, c in old.cameras.items() if c.enabled}
    after = {n: c for n, c in new.cameras.items() if c.enabled}
    result = ReloadPlan(
        removed=sorted(before.keys() - after.keys()),
        models=models,
        needs_restart=[f for f in NEEDS_RESTART if getattr(old, f) != getattr(new, f)],
    )
    for name, cam in after.items():
        was = before.get(name)
        if was is None:
            result.added.append(name)
        elif _needs_restart(was, cam) or _uses(cam, reloaded):
            result.restarted.append(name)
        elif was != cam:
            result.updated.append(name)
    return result


def effective(old: Config, new: Config, plan: ReloadPlan) -> Config:
    """The config the daemon runs on after the reload: the new one, except the sections that
    need a restart, which keep their running values."""
    return new.model_copy(update={f: getattr(old, f) for f in plan.needs_restart})


def apply(
    plan: ReloadPlan, pipeline: Pipeline, config: Config, stop_timeout: float
) -> dict[str, str]:
    """Carry out ``plan`` on the running pipeline, and start again any camera of the config
    that is not running (one that could not start at an earlier reload); returns the cameras
    that could not start, with the reason (each is also logged)."""
    if plan.needs_restart:
        log.warning(
            "reload: %s changed; that takes effect at the next restart",
            ", ".join(plan.needs_restart),
        )
    pipeline.config = config
    # a camera that failed to start at an earlier reload is in the config but not running
    running = set(pipeline.cameras)
    stopping = [n for n in plan.removed + plan.restarted if n in running]
    if stopping and not pipeline.remove_cameras(stopping, stop_timeout):
        log.warning("reload: %s did not stop within %.1f s", ", ".join(stopping), stop_timeout)
    if plan.models:
        users = [n for n in plan.restarted if _uses(config.cameras[n], set(plan.models))]
        log.info(
            "reload: model(s) %s changed: loading again; restarting camera(s) %s",
            ", ".join(plan.models),
            ", ".join(users) or "none",
        )
        pipeline.drop_models(set(plan.models))
    for name in plan.updated:
        if name in running:
            pipeline.cameras[name].reconfigure(config.cameras[name])
    starting = plan.added + plan.restarted
    # every reload retries them
    starting += [
        n for n, c in config.cameras.items() if c.enabled and n not in running and n not in starting
    ]
    failed: dict[str, str] = {}
    for name in starting:
        try:
            pipeline.add_camera(name, config.cameras[name])
        except Exception as exc:
            # a model that will not load fails this camera only; the others keep running
            log.exception("reload: camera %s could not start", name)
            failed[name] = str(exc)
    return failed


def reload(
    running: Config, load: Callable[[], Config], pipeline: Pipeline, stop_timeout: float
) -> tuple[Config, Event]:
    """Load and check the config again and apply it; returns the config now running and the
    ``config_reload`` event. A config that does not pass ``edged check`` changes nothing."""
    try:
        new = load()
    except ConfigError as exc:
        log.error("reload rejected; still running on the previous config:")
        for problem in exc.problems:
            log.error("error: %s", problem)
        return running, _event({"status": "rejected", "errors": exc.problems})
    actions = plan(running, new)
    log.info("reload: %s", actions.summary())
    config = effective(running, new, actions)
    failed = apply(actions, pipeline, config, stop_timeout)
    return config, _event({"status": "ok", **actions.as_payload(), "failed": failed})


def _event(payload: dict[str, Any]) -> Event:
    return Event(kind="config_reload", camera=None, topic=topics.CONFIG, payload=payload)
