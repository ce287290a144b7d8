"""A config reload (SIGHUP) as the smallest set of actions on the running pipeline.

``plan`` compares the running config with the new one, camera by camera:

- a camera whose settings are equal keeps running untouched (same source thread, tracker and
  counters);
- analytics settings (zones, lines, scene, tracker, detection thresholds and classes) are
  applied in place: the source keeps streaming;
- a changed ``source``, ``detect.model``, ``segment`` or ``snapshots`` restarts that camera;
- a changed model (``models.<name>``) loads it again and restarts the cameras that use it;
- cameras that appear start, cameras that disappear (or get ``enabled: false``) stop;
- ``device_id``, ``mqtt``, ``outputs``, ``journal``, ``metrics``, ``debug_view`` and
  ``homeassistant`` are not applied: they name where events go or are served, and change
  only with a restart (a log line and the event say so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edged.config import CameraConfig, Config, ConfigError
from edged.core import topics
from edged.core.event import Event
from edged.core.redact import redact_text
from edged.pipeline import Pipeline

log = logging.getLogger(__name__)

NEEDS_RESTART = (
    "device_id",
    "mqtt",
    "outputs",
    "journal",
    "metrics",
    "debug_view",
    "homeassistant",
)


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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``apply`` could not do: cameras that could not start (a camera that was running
    keeps running on its previous settings) and models that did not load (they, and the
    cameras that use them, stay as they were), each with the reason."""

    cameras: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)

    def running(self, old: Config, new: Config) -> Config:
        """``new`` as it is really running: what failed keeps its ``old`` settings (so the
        next reload tries it again)."""
        models = {**new.models, **{m: old.models[m] for m in self.models if m in old.models}}
        cameras = dict(new.cameras)
        for name in self.cameras:
            if name in old.cameras:
                cameras[name] = old.cameras[name]
        return new.model_copy(update={"models": models, "cameras": cameras})


def apply(
    plan: ReloadPlan, pipeline: Pipeline, old: Config, config: Config, stop_timeout: float
) -> Outcome:
    """Carry out ``plan`` on the running pipeline, and start again any camera of the config
    that is not running (one that could not start at an earlier reload).

    Nothing running is stopped before its replacement is ready: changed models load first,
    and a restarted camera is built (its models, snapshot folder, geometry) before the old
    one stops; what cannot be built keeps running as it was and is reported."""
    if plan.needs_restart:
        log.warning(
            "reload: %s changed; that takes effect at the next restart",
            ", ".join(plan.needs_restart),
        )
    running = set(pipeline.cameras)
    pipeline.config = config
    outcome = Outcome()
    if plan.models:
        outcome.models.update(pipeline.reload_models(set(plan.models), config))
        for model, why in outcome.models.items():
            log.error(
                "reload: model %s could not load (%s); it and its cameras stay as they were",
                model,
                why,
            )
        loaded = set(plan.models) - set(outcome.models)
        users = [n for n in plan.restarted if _uses(config.cameras[n], loaded)]
        if loaded:
            log.info(
                "reload: model(s) %s loaded again; restarting camera(s) %s",
                ", ".join(sorted(loaded)),
                ", ".join(users) or "none",
            )
    for name in plan.updated:
        if name in running:
            pipeline.cameras[name].reconfigure(config.cameras[name])
    removed = [n for n in plan.removed if n in running]
    if removed and not pipeline.remove_cameras(removed, stop_timeout):
        log.warning("reload: %s did not stop within %.1f s", ", ".join(removed), stop_timeout)
    starting = plan.added + plan.restarted
    # every reload retries them
    starting += [
        n for n, c in config.cameras.items() if c.enabled and n not in running and n not in starting
    ]
    for name in starting:
        cam = config.cameras[name]
        kept = [m for m in outcome.models if _uses(cam, {m})]
        if kept and name in running:
            outcome.cameras[name] = f"model {kept[0]} could not load: {outcome.models[kept[0]]}"
            continue
        try:
            runtime = pipeline.build_camera(name, cam)
        except Exception as exc:
            log.debug("camera %s could not be built", name, exc_info=True)
            why = f"{type(exc).__name__}: {exc}"
            outcome.cameras[name] = why
            log.error(
                "reload: camera %s could not start (%s); %s",
                name,
                why,
                "it keeps running on its previous settings" if name in running else "not started",
            )
            continue
        if name in running and not pipeline.remove_cameras([name], stop_timeout):
            log.warning("reload: %s did not stop within %.1f s", name, stop_timeout)
        pipeline.start_camera(runtime)
    return outcome


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
        errors = [redact_text(p) for p in exc.problems]
        return running, _event({"status": "rejected", "errors": errors})
    actions = plan(running, new)
    log.info("reload: %s", actions.summary())
    config = effective(running, new, actions)
    outcome = apply(actions, pipeline, running, config, stop_timeout)
    payload = {"status": "ok", **actions.as_payload(), "failed": outcome.cameras}
    return outcome.running(running, config), _event(payload)


def _event(payload: dict[str, Any]) -> Event:
    return Event(kind="config_reload", camera=None, topic=topics.CONFIG, payload=payload)
