"""The web console: a grid of every camera, a page per camera with its state, counts and
recent events, and the zone and line editor; plain HTML, CSS and JavaScript shipped in the
package (``static/``), fed by a small JSON API:

- ``GET /api/state``: the device and each configured camera (state, reason, fps, picture
  size, zones and lines with their geometry relative to the picture and their counts);
- ``GET /api/cameras/<name>/events``: its recent events, newest last, with snapshot links;
- ``GET /api/cameras/<name>/snapshots/<file>``: a snapshot the camera saved;
- ``POST /api/cameras/<name>/geometry``: the editor's zones and lines, as YAML to copy
  (``"save": false``) or saved into the config file and reloaded (``"save": true``).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edged.analytics.lines import in_direction
from edged.config.camera import CameraConfig
from edged.config.edit import Geometry, LineEdit, snippet
from edged.config.geometry import is_relative
from edged.core.redact import redact_text
from edged.pipeline import Pipeline
from edged.web.config_save import ConfigSaver
from edged.web.health import camera_health
from edged.web.recent import RecentEvents
from edged.web.server import Request

JSON = "application/json"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript"}
DIRECTIONS = ("left_to_right", "right_to_left", "top_to_bottom", "bottom_to_top")
# what snapshots.py names its files: <ms>-<label>-<event id>.jpg
SNAPSHOT_FILE = re.compile(r"^[0-9]+-[A-Za-z0-9_ -]+-[0-9a-f-]+\.jpg$")


def _static() -> dict[str, bytes]:
    folder = resources.files("edged.web") / "static"
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.name.endswith(tuple(TYPES))}


class Console:
    def __init__(
        self,
        pipeline: Pipeline,
        recent: RecentEvents,
        saver: ConfigSaver | None,
        links: dict[str, str],
        stale_s: float,
    ) -> None:
        self.pipeline = pipeline
        self.recent = recent
        self.saver = saver
        self.links = links
        self.stale_s = stale_s
        self.files = _static()

    # -- GET --------------------------------------------------------------------------------

    def route(self, req: Request, path: str) -> bool:
        parts = [p for p in path.split("/") if p]
        if parts in ([], ["cameras"]):
            return self._file(req, "index.html")
        if len(parts) == 2 and parts[0] == "static":
            return self._file(req, parts[1])
        if parts[:1] == ["cameras"] and len(parts) in (2, 3):
            if not self._camera(req, parts[1]):
                return True
            if len(parts) == 2:
                return self._file(req, "camera.html")
            if parts[2] == "edit":
                return self._file(req, "editor.html")
            return False  # the pictures' route
        if parts == ["api", "state"]:
            req.send(200, JSON, _json(self.state()))
            return True
        if parts[:2] == ["api", "cameras"] and len(parts) >= 4:
            camera = parts[2]
            if not self._camera(req, camera):
                return True
            if parts[3:] == ["events"]:
                req.send(200, JSON, _json({"events": self.events(camera)}))
                return True
            if parts[3] == "snapshots" and len(parts) == 5:
                return self._snapshot(req, camera, parts[4])
        return False

    def _file(self, req: Request, name: str) -> bool:
        body = self.files.get(name)
        if body is None:
            return False
        req.send(200, TYPES[Path(name).suffix], body)
        return True

    def _camera(self, req: Request, camera: str) -> bool:
        config = self.pipeline.config.cameras.get(camera)
        if config is None or not config.enabled:
            req.send(404, "text/plain; charset=utf-8", f"no camera {camera!r}\n".encode())
            return False
        return True

    def state(self) -> dict[str, Any]:
        config = self.pipeline.config
        cameras = {
            name: self._camera_state(name, cam)
            for name, cam in config.cameras.items()
            if cam.enabled
        }
        return {
            "device": config.device_id,
            "cameras": cameras,
            "links": self.links,
            "editable": self.saver is not None,
        }

    def _camera_state(self, name: str, config: CameraConfig) -> dict[str, Any]:
        cam = self.pipeline.cameras.get(name)
        size: tuple[int, int] | None = None
        out: dict[str, Any] = {
            "name": name,
            "scene": None if config.scene is None else config.scene.preset,
        }
        if cam is None:
            out.update(running=False, ok=False, state="stopped", reason="not running: see the log")
            out.update(fps=0.0, last_frame_age_s=None)
        else:
            health = camera_health(cam, self.stale_s)
            out.update(running=True, **health.as_dict())
            out["reason"] = redact_text(out["reason"])
            latest = cam.analytics.latest
            if latest is not None:
                h, w = latest[0].image.shape[:2]
                size = (w, h)
        out["size"] = size
        zones = {} if cam is None else {z.name: z.counts() for z in list(cam.analytics.zones)}
        lines = {} if cam is None else {ln.name: ln.totals for ln in list(cam.analytics.lines)}
        out["zones"] = [
            {
                "name": zname,
                "polygon": _relative(z.polygon, size),
                "counts": zones.get(zname, {}),
                "total": sum(zones.get(zname, {}).values()),
            }
            for zname, z in config.zones.items()
        ]
        out["lines"] = []
        for lname, ln in config.lines.items():
            points = _relative(ln.points, size)
            totals = lines.get(lname, {"in": {}, "out": {}})
            direction = None
            if points is not None:
                # the analytics' default follows the line in pixels
                scale = np.asarray(size or (1, 1), np.float64)
                at = np.asarray(points) * scale
                direction = in_direction(at, ln.directions.in_, ln.directions.out)
            out["lines"].append(
                {
                    "name": lname,
                    "points": points,
                    "in_direction": direction,
                    "in": sum(dict(totals["in"]).values()),
                    "out": sum(dict(totals["out"]).values()),
                }
            )
        return out

    def events(self, camera: str) -> list[dict[str, Any]]:
        out = []
        for event in self.recent.of(camera):
            shot = event.get("snapshot")
            if isinstance(shot, dict) and shot.get("path"):
                name = Path(shot["path"]).name
                event = {**event, "snapshot_url": f"/api/cameras/{camera}/snapshots/{name}"}
            out.append(event)
        return out

    def _snapshot(self, req: Request, camera: str, name: str) -> bool:
        cam = self.pipeline.cameras.get(camera)
        folder = None if cam is None or cam.snapshots is None else cam.snapshots.dir
        if folder is None or not SNAPSHOT_FILE.match(name):
            req.send(404, "text/plain; charset=utf-8", b"no such snapshot\n")
            return True
        try:
            body = (folder / name).read_bytes()
        except FileNotFoundError:
            req.send(404, "text/plain; charset=utf-8", b"no such snapshot (pruned?)\n")
            return True
        req.send(200, "image/jpeg", body)
        return True

    # -- POST -------------------------------------------------------------------------------

    def post(self, req: Request, path: str) -> bool:
        parts = [p for p in path.split("/") if p]
        if len(parts) != 4 or parts[:2] != ["api", "cameras"] or parts[3] != "geometry":
            return False
        camera = parts[2]
        if not self._camera(req, camera):
            return True
        raw = req.body()
        if raw is None:
            return True
        try:
            data = json.loads(raw)
            geometry = parse_geometry(data)
        except (ValueError, TypeError) as exc:
            req.send(400, JSON, _json({"ok": False, "errors": [str(exc)]}))
            return True
        text = snippet(geometry)
        if not data.get("save"):
            req.send(200, JSON, _json({"ok": True, "yaml": text}))
            return True
        if self.saver is None:
            why = "this daemon runs without a config file it may write (see the README)"
            req.send(409, JSON, _json({"ok": False, "errors": [why], "yaml": text}))
            return True
        saved = self.saver.save(camera, geometry)
        req.send(200 if saved.ok else 422, JSON, _json({**saved.as_dict(), "yaml": text}))
        return True


def parse_geometry(data: Any) -> Geometry:
    """The editor's JSON: ``{"zones": {name: [[x, y], …]}, "lines": {name: {"points":
    [[x, y], [x, y]], "in": direction}}}``, points relative to the picture. The rest is
    checked when saved, by the config's own rules."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object with zones and lines")
    zones: dict[str, list[tuple[float, float]]] = {}
    for name, polygon in _named(data, "zones").items():
        zones[name] = _point_list(polygon, f"zones.{name}")
    lines: dict[str, LineEdit] = {}
    for name, line in _named(data, "lines").items():
        if not isinstance(line, dict):
            raise ValueError(f"lines.{name}: give points and in")
        points = _point_list(line.get("points"), f"lines.{name}.points")
        if len(points) != 2:
            raise ValueError(f"lines.{name}.points: a line has 2 points, got {len(points)}")
        direction = line.get("in")
        if direction not in DIRECTIONS:
            raise ValueError(f"lines.{name}.in: one of {', '.join(DIRECTIONS)}")
        lines[name] = LineEdit((points[0], points[1]), direction)
    return Geometry(zones, lines)


def _named(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{key}: a mapping of names")
    for name in value:
        if not re.match(r"^[A-Za-z0-9_-]+$", name):
            raise ValueError(f"{key}: name {name!r}: use letters, digits, _ and - only")
    return value


def _point_list(value: Any, where: str) -> list[tuple[float, float]]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(c, (int, float)) for c in p)
        for p in value
    ):
        raise ValueError(f"{where}: a list of [x, y] numbers")
    points = [(float(x), float(y)) for x, y in value]
    if not all(0.0 <= c <= 1.0 for p in points for c in p):
        raise ValueError(f"{where}: relative points, every value within 0–1")
    return points


def _relative(points: Any, size: tuple[int, int] | None) -> list[list[float]] | None:
    """Config points (relative or pixels) as shares of the picture; None for pixels while
    the picture's size is not known yet."""
    pts = [(float(x), float(y)) for x, y in points]
    if is_relative(pts):
        return [[x, y] for x, y in pts]
    if size is None:
        return None
    w, h = size
    return [[x / w, y / h] for x, y in pts]


def _json(data: Any) -> bytes:
    return (json.dumps(data) + "\n").encode()
