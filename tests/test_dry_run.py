"""Dry runs stay dry: ``edged run --dry-run`` publishes nothing and leaves no journal or
snapshot behind, and a run without a broker cannot leave its events in the journal for the
next run with one to publish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.mqtt_helpers import free_port
from tests.paths import ROOT

TRAFFIC = ROOT / "configs" / "traffic.yaml"
FAST = ["--set", "cameras.street.source.realtime=false"]


def edged_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "EDGED_STATE_DIR": str(tmp_path / "state"),
        # nothing listens there: a run that tried the broker would say so
        "EDGED_MQTT_PORT": str(free_port()),
        "TMPDIR": str(scratch),  # where the dry run makes its folder
    }
    return subprocess.run(
        [sys.executable, "-m", "edged", "run", str(TRAFFIC), *args, *FAST],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_a_dry_run_prints_its_events_and_leaves_nothing(tmp_path: Path) -> None:
    result = edged_run(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = {e["kind"] for e in events}
    assert {"object", "traffic_passage", "traffic_totals"} <= kinds, kinds
    assert "dry run: no broker" in result.stderr
    # the config's journal was never opened, and the temporary one is gone
    assert not (tmp_path / "state").exists()
    assert not list((tmp_path / "tmp").glob("edged-dry-*"))


def test_a_run_with_a_broker_refuses_what_a_run_without_one_left(tmp_path: Path) -> None:
    offline = edged_run(tmp_path, "--set", "mqtt=null")
    assert offline.returncode == 0, offline.stderr
    assert (tmp_path / "state" / "events.db").is_file()
    online = edged_run(tmp_path)
    assert online.returncode == 1
    assert "undelivered events were written by a run without a broker" in online.stderr
    assert "--dry-run" in online.stderr
