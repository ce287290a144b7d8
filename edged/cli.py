"""The ``edged`` command line: arguments parsed, each subcommand handed to its module."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from edged import __version__
from edged.config import Config, ConfigError, load
from edged.config.errors import dotted
from edged.config.loader import place_of
from edged.core.redact import redact_text
from edged.service import logs
from edged.service.check import load_checked

EXIT_CONFIG = 2
# what a shell shows for a program a closed pipe ended (128 + SIGPIPE): ``edged models | head``
EXIT_PIPE = 141
# the models shipped beside the package, in the checkout it runs from
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "engines"


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="the device's YAML config")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value, e.g. --set cameras.front.source.realtime=false (repeatable)",
    )


LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edged", description="Edge video analytics daemon.")
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS)
    # ``edged run site.yaml --log-level DEBUG`` as well as ``edged --log-level DEBUG run …``:
    # the subcommands take it too, and one given there wins
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", parents=[common], help="run the cameras of a config until they end or a signal"
    )
    _config_args(run)
    run.add_argument(
        "--print-events", action="store_true", help="also print every event as a JSON line"
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="no broker, a temporary journal and snapshot folder, every event printed: a try "
        "that leaves nothing for the real run",
    )
    check = sub.add_parser(
        "check", parents=[common], help="validate a config (and its models) and exit"
    )
    store = sub.add_parser(
        "store",
        parents=[common],
        help="store the events of a broker or stream in PostgreSQL (one worker of a group)",
    )
    store.add_argument("config", help="the store's YAML config (configs/store.example.yaml)")
    _config_args(check)
    schema = sub.add_parser("schema", parents=[common], help="print the config's JSON Schema")
    schema.add_argument(
        "--events", action="store_true", help="the event payloads' schema (v1) instead"
    )
    engine = sub.add_parser("engine", parents=[common], help="TensorRT engines").add_subparsers(
        dest="engine_command", required=True
    )
    build = engine.add_parser(
        "build", parents=[common], help="build (or find in the cache) a TensorRT plan"
    )
    build.add_argument("model", help="an ONNX model with its manifest beside it")
    build.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16")
    build.add_argument("--batch", type=int, default=1, help="largest batch the plan takes")
    build.add_argument("--cache-dir", default=None, help="default: the config default")
    build.add_argument(
        "--graph-preprocess",
        action="store_true",
        help="prepend resize and normalisation to the graph first (preprocess: graph)",
    )
    calibrate = sub.add_parser(
        "calibrate", parents=[common], help="make an INT8 (Q/DQ) model from real frames"
    )
    calibrate.add_argument("model", help="the FP32 ONNX model (manifest beside it)")
    calibrate.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        default=[],
        metavar="VIDEO",
        help="video files or stream URIs to take frames from",
    )
    calibrate.add_argument("--config", help="also take frames from this config's cameras")
    calibrate.add_argument("--frames", type=int, default=200, help="calibration frames")
    calibrate.add_argument(
        "--method",
        choices=["minmax", "entropy", "percentile", "auto"],
        default="minmax",
        help="auto: try each, keep the one closest to FP32 on held-out frames",
    )
    calibrate.add_argument(
        "--target",
        choices=["cpu", "tensorrt"],
        default="cpu",
        help="cpu: uint8 activations (fastest on ONNX Runtime); tensorrt: symmetric int8",
    )
    calibrate.add_argument("--keep-head-fp32", action="store_true")
    calibrate.add_argument("-o", "--output", help="default: <model>-int8.onnx")
    convert = sub.add_parser(
        "convert", parents=[common], help="make an FP16 or a dynamic-batch model"
    )
    convert.add_argument("model", help="the FP32 ONNX model (manifest beside it)")
    to = convert.add_mutually_exclusive_group(required=True)
    to.add_argument("--fp16", action="store_true", help="FP16 weights and compute")
    to.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="the batch dimension of a batch-1 model made dynamic (checked: a batch of two"
        " gives what two runs of one give)",
    )
    convert.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        default=[],
        metavar="VIDEO",
        help="frames to measure the change against FP32 on",
    )
    convert.add_argument("-o", "--output", help="default: <model>-fp16.onnx / -dyn.onnx")
    events = sub.add_parser(
        "events", parents=[common], help="subscribe to a broker and print edged's events"
    )
    events.add_argument("config", nargs="?", help="take the broker (TLS, login) from this config")
    events.add_argument("--host", help="broker host (default: the config's, or 127.0.0.1)")
    events.add_argument("--port", type=int, help="broker port (default: the config's, or 1883)")
    events.add_argument("--prefix", help="topic prefix (default: the config's, or edged)")
    events.add_argument(
        "--topic",
        action="append",
        default=[],
        help="topic filter (repeatable; default: <prefix>/<device>/#, or <prefix>/#)",
    )
    events.add_argument("--json", action="store_true", help="one JSON object per message")
    events.add_argument("--count", type=int, help="exit after this many messages")
    snapshot = sub.add_parser(
        "snapshot",
        parents=[common],
        help="write one JPEG of a camera, as its config opens it (the raw frame: the privacy "
        "blur of snapshots.privacy needs the detector, which does not run here)",
    )
    _config_args(snapshot)
    snapshot.add_argument("camera", help="the camera's name in the config")
    snapshot.add_argument(
        "-o", "--output", help="the JPEG to write (default: <camera>.jpg here; - for stdout)"
    )
    snapshot.add_argument(
        "--grid",
        action="store_true",
        help="draw a grid of relative coordinates (every 0.1) and the camera's zones and lines "
        "(each line's 'in' side as an arrow), to read coordinates off",
    )
    snapshot.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="seconds to wait for the first frame (default 15)",
    )
    models = sub.add_parser(
        "models", parents=[common], help="list the models (with manifests) in a folder"
    )
    models.add_argument(
        "folder", nargs="?", default=None, help=f"default: the shipped models ({SHIPPED_MODELS})"
    )
    return parser


def _engine_build(args: argparse.Namespace) -> int:
    from edged.tools.engine_build import build_engine

    return build_engine(
        args.model, args.precision, args.batch, args.cache_dir, args.graph_preprocess
    )


def _calibrate(args: argparse.Namespace) -> int:
    from edged.tools.calibration import collect_frames, config_sources
    from edged.tools.int8 import quantize_int8
    from edged.tools.model_files import QuantizeError

    sources = list(args.sources)
    if args.config:
        try:
            sources += config_sources(load(args.config))
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"error: {redact_text(problem)}", file=sys.stderr)
            return EXIT_CONFIG
    if not sources:
        print("error: give frames with --from VIDEO… or --config CONFIG", file=sys.stderr)
        return EXIT_CONFIG
    try:
        frames = collect_frames(sources, args.frames)
        report = quantize_int8(
            args.model,
            args.output,
            frames,
            method=args.method,
            keep_head_fp32=args.keep_head_fp32,
            target=args.target,
        )
    except (QuantizeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _convert(args: argparse.Namespace) -> int:
    from edged.tools.calibration import collect_frames
    from edged.tools.fp16 import convert_fp16
    from edged.tools.model_files import QuantizeError

    try:
        if args.dynamic_batch:
            from edged.tools.graph_edits import make_dynamic_batch

            model = Path(args.model)
            out = make_dynamic_batch(
                model, args.output or model.with_name(f"{model.stem}-dyn.onnx")
            )
            print(f"dynamic batch: {out}")
            return 0
        frames = collect_frames(args.sources, 50) if args.sources else None
        report = convert_fp16(args.model, args.output, frames=frames)
    except (QuantizeError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _models(folder: str | None) -> int:
    from edged.models.manifest import ModelError, load_manifest

    # the shipped ones wherever it is run from (they were looked for in ./engines)
    where = SHIPPED_MODELS if folder is None else Path(folder)
    paths = sorted(where.glob("*.onnx"))
    if not paths:
        print(f"error: no .onnx models in {where}", file=sys.stderr)
        return 1
    status = 0
    for path in paths:
        try:
            m = load_manifest(path)
        except ModelError as exc:
            print(f"{path.name}: {exc}")
            status = 1
            continue
        size = path.stat().st_size / 1e6
        w, h = m.input.size
        print(
            f"{path.name}: {m.family} {m.precision} {w}x{h} {m.input.resize}, "
            f"{len(m.labels)} labels, {size:.1f} MB, {m.license}, sha256 ok"
        )
    return status


# the flags of ``edged events`` that set a field of the broker's config
_EVENT_FLAGS = {"host": "--host", "port": "--port", "topic_prefix": "--prefix"}


def _flag_problem(error: Any) -> str:
    """A pydantic error about a broker field set by a flag of ``edged events``, by flag."""
    field = ".".join(str(p) for p in error["loc"]) or "mqtt"
    why = error["msg"]
    if field == "topic_prefix" and error["type"] == "string_pattern_mismatch":
        why = "must be a non-empty topic without the wildcards '#' and '+'"
    return f"{_EVENT_FLAGS.get(field, field)} {error['input']!r}: {why}"


def _print_problems(problems: Iterable[str]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return EXIT_CONFIG


def _events(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from edged.config.events import MqttConfig
    from edged.outputs.watch import filter_problem
    from edged.outputs.watch import run as watch
    from edged.service.check_tls import tls_problems

    mqtt, scope = MqttConfig(), "#"
    if args.config:
        try:
            config = load(args.config)
        except ConfigError as exc:
            return _print_problems(exc.problems)
        if config.mqtt is None:
            return _print_problems([f"{args.config} has no mqtt section"])
        mqtt, scope = config.mqtt, f"{config.device_id}/#"
        if mqtt.tls is not None:
            found = tls_problems(mqtt.tls)
            if found:
                return _print_problems(
                    f"{place_of(config, loc)}: {dotted(loc)}: {why}" for loc, why in found
                )
    changes = {"host": args.host, "port": args.port, "topic_prefix": args.prefix}
    given = {k: v for k, v in changes.items() if v is not None}
    try:
        mqtt = MqttConfig.model_validate({**mqtt.model_dump(), **given})
    except ValidationError as exc:
        return _print_problems(_flag_problem(e) for e in exc.errors())
    problems = [f"--topic {t!r}: {why}" for t in args.topic if (why := filter_problem(t))]
    if args.count is not None and args.count < 1:
        problems.append(f"--count {args.count}: give at least 1")
    if problems:
        return _print_problems(problems)
    return watch(mqtt, args.topic or [f"{mqtt.topic_prefix}/{scope}"], args.json, args.count)


def _snapshot(args: argparse.Namespace) -> int:
    from edged.service.snapshot import SnapshotError, snapshot

    if not args.timeout > 0:
        return _print_problems([f"--timeout {args.timeout:g}: give a number of seconds above 0"])
    try:
        said = snapshot(
            load(args.config, args.overrides), args.camera, args.output, args.grid, args.timeout
        )
    except ConfigError as exc:
        return _print_problems(exc.problems)
    except BrokenPipeError:
        raise  # ``-o - | head -c 100``: main ends it as a closed pipe ends every subcommand
    except (SnapshotError, OSError) as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    # the picture may be on stdout
    print(said, file=sys.stderr if args.output == "-" else sys.stdout)
    return 0


def _dry_run_overrides(args: argparse.Namespace, folder: Path) -> list[str] | None:
    """``--set`` values that keep a run off the broker and out of the real journal and
    snapshot folders (after the user's own, so they win; a reload keeps them)."""
    try:
        config = load(args.config, args.overrides)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return None
    dry = [
        "mqtt=null",
        "homeassistant=null",
        "outputs.nats=null",
        "outputs.redis=null",
        f"journal.path={folder / 'events.db'}",
    ]
    for name, cam in config.cameras.items():
        if cam.snapshots is not None and cam.snapshots.dir is not None:
            dry.append(f"cameras.{name}.snapshots.dir={folder / 'snapshots'}")
    return [*args.overrides, *dry]


def _load(args: argparse.Namespace) -> Config | None:
    try:
        return load_checked(args.config, args.overrides)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """The exit code of the subcommand in ``argv``; a reader that closed stdout early (``edged
    models | head``) ends it quietly with ``EXIT_PIPE``, not a traceback."""
    try:
        code = _main(argv)
        # what is still buffered goes out here, where a closed pipe is caught
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout once more at exit, which would fail again and print "Exception
        # ignored": devnull takes it (the Python docs' "Note on SIGPIPE")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    logs.setup(args.log_level)
    if args.command == "schema":
        if args.events:
            from edged.outputs.schema import json_schema

            print(json.dumps(json_schema(), indent=2))
            return 0
        print(json.dumps(Config.model_json_schema(by_alias=True), indent=2))
        return 0
    if args.command == "models":
        return _models(args.folder)
    if args.command == "snapshot":
        return _snapshot(args)
    if args.command == "events":
        return _events(args)
    if args.command == "engine":
        return _engine_build(args)
    if args.command == "calibrate":
        return _calibrate(args)
    if args.command == "convert":
        return _convert(args)
    if args.command == "store":
        return _store(args)
    signals = None
    if args.command == "run":
        from edged.service.signals import Signals

        # before the config and its models are checked, which takes seconds
        signals = Signals().install()
    with contextlib.ExitStack() as stack:
        if args.command == "run" and args.dry_run:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edged-dry-")))
            overrides = _dry_run_overrides(args, folder)
            if overrides is None:
                return EXIT_CONFIG
            args.overrides, args.print_events = overrides, True
            logging.getLogger("edged").info(
                "dry run: no broker; journal and snapshots in %s, removed at exit", folder
            )
        return _check_or_run(args, signals)


def _store(args: argparse.Namespace) -> int:
    from edged.config.loader import load_model
    from edged.config.store import StoreConfig
    from edged.service.signals import Signals
    from edged.store.service import run

    signals = Signals().install()
    try:
        config = load_model(StoreConfig, args.config)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_CONFIG
    return run(config, signals.stop)


def _check_or_run(args: argparse.Namespace, signals: Any) -> int:
    config = _load(args)
    if config is None:
        return EXIT_CONFIG
    if args.command == "check":
        cams = sum(c.enabled for c in config.cameras.values())
        print(f"{args.config}: OK ({cams} camera(s), {len(config.models)} model(s))")
        return 0
    from edged.outputs.journal import JournalError
    from edged.service.daemon import run
    from edged.web.config_save import ConfigFile

    try:
        return run(
            config,
            print_events=args.print_events,
            signals=signals,
            # the running daemon holds its own HTTP ports: a reload does not bind them again
            reload=lambda: load_checked(args.config, args.overrides, serving=config),
            config_file=ConfigFile(
                Path(args.config),
                lambda path: load_checked(path, args.overrides, serving=config),
            ),
        )
    except JournalError as exc:
        logging.getLogger("edged").error("%s", exc)
        return 1
