"""Open a model the way the daemon will, on the CPU, and run it once on a blank picture.

``edged check`` (and so a reload) uses this to find, before a start, a model file that ONNX
Runtime cannot load (truncated, empty, not ONNX, though its manifest's sha256 matches), a
manifest naming an input or output the model does not have, outputs whose shapes are not
the family's, and a precision the configured backend cannot run. The CPU is enough for all
of that and builds nothing: no TensorRT plan, no prepared graph.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from edged.config.model import ModelConfig
from edged.engines.base import EngineError
from edged.engines.onnxruntime import OrtEngine
from edged.models.detector import Detector, DetectRequest, resolved_backend
from edged.models.manifest import Manifest, ModelError
from edged.models.precision import check_precision
from edged.models.segmenter import SEMANTIC_FAMILIES, Segmenter
from edged.models.variants import choose_file

# what ONNX Runtime raises for a model it cannot load or run: its own classes, none of them
# a RuntimeError
ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoModel,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
    ort_state.EPFail,
    RuntimeError,
)


# the engine logs what it runs on; for this trial session that would read as the real one
engine_log = logging.getLogger("edged.engines.onnxruntime")


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def verify_model(config: ModelConfig) -> Manifest:
    """The model's manifest, once the model has loaded and run as it describes; else
    ``ModelError`` saying what does not fit."""
    chosen = choose_file(config, resolved_backend(config))
    path, manifest = chosen.path, chosen.manifest
    try:
        check_precision(config, manifest, resolved_backend(config))
        with _quiet(engine_log):
            engine = OrtEngine(path, backend="cpu", threads=1)
    except EngineError as exc:
        raise ModelError(str(exc)) from None
    except ORT_ERRORS as exc:
        raise ModelError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None
    width, height = manifest.input.size
    blank = np.zeros((height, width, 3), np.uint8)
    try:
        if manifest.family in SEMANTIC_FAMILIES:
            Segmenter(manifest, engine).segment(blank)
        else:
            Detector(manifest, engine).detect([DetectRequest(blank, 0.0, 0.5)])
    except KeyError as exc:
        raise ModelError(
            f"{path}: the manifest's decode names output {exc.args[0]!r}; the model's outputs "
            f"are {engine.output_names}"
        ) from None
    except ORT_ERRORS as exc:
        raise ModelError(
            f"{path}: the model does not run on the {width}x{height} input its manifest "
            f"describes: {exc}"
        ) from None
    except (ValueError, IndexError) as exc:
        raise ModelError(
            f"{path}: the model's outputs {engine.output_names} do not fit the manifest's "
            f"{manifest.family} decode: {exc}"
        ) from None
    return manifest
