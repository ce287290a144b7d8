"""Tiny real ONNX models whose outputs are known tensors, with their manifests, for testing
family adapters through the real loading path (manifest, sha256, ONNX Runtime, adapter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from edged.core.files import sha256_of
from tests.paths import MODEL as SHIPPED

# Ultralytics' ONNX exports: letterbox 640, RGB, /255, NCHW
ULTRALYTICS_INPUT: dict[str, Any] = {
    "name": "images",
    "size": [640, 640],
    "layout": "NCHW",
    "color": "RGB",
    "resize": "letterbox",
    "pad_value": 114,
    "mean": [0.0, 0.0, 0.0],
    "std": [255.0, 255.0, 255.0],
}


def constant_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    input_name: str = "images",
    input_shape: tuple[int, ...] = (1, 3, 640, 640),
) -> None:
    """An ONNX model whose outputs are ``outputs`` whatever the input: each output is
    ``mean(input) · 0 + constant``, so ONNX Runtime really reads the input and runs a graph
    (no constant folding can skip it)."""
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
        helper.make_node(
            "Constant", [], ["zero"], value=numpy_helper.from_array(np.zeros((), np.float32))
        ),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
    ]
    graph_outputs = []
    for name, value in outputs.items():
        value = np.ascontiguousarray(value, np.float32)
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [f"{name}_value"],
                value=numpy_helper.from_array(value, f"{name}_value"),
            )
        )
        nodes.append(helper.make_node("Add", ["nothing", f"{name}_value"], [name]))
        graph_outputs.append(
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape))
        )
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        graph_outputs,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_model(
    directory: Path,
    name: str,
    family: str,
    outputs: dict[str, np.ndarray],
    labels: list[str],
    decode: dict[str, Any] | None = None,
    input_spec: dict[str, Any] | None = None,
) -> Path:
    """``<directory>/<name>.onnx`` and its manifest ``<name>.yaml`` (with the real sha256);
    returns the model's path."""
    spec = dict(ULTRALYTICS_INPUT if input_spec is None else input_spec)
    model_path = directory / f"{name}.onnx"
    width, height = spec["size"]
    constant_model(model_path, outputs, spec["name"], (1, 3, height, width))
    manifest = {
        "name": name,
        "family": family,
        "file": model_path.name,
        "sha256": sha256_of(model_path),
        "license": "test fixture",
        "source": "tests/onnx_fixtures.py",
        "input": spec,
        "decode": decode or {},
        "labels": labels,
    }
    model_path.with_suffix(".yaml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return model_path


def model_beside(tmp_path: Path, data: bytes | None = None, **manifest: Any) -> Path:
    """The shipped detector's manifest (changed by ``manifest``) beside a model file: the
    shipped one (a link), or ``data``; the manifest's sha256 is the file's, so only what
    ONNX Runtime finds in the file can tell it is wrong."""
    folder = tmp_path / "model"
    folder.mkdir()
    model = folder / SHIPPED.name
    if data is None:
        model.symlink_to(SHIPPED)
    else:
        model.write_bytes(data)
    spec = yaml.safe_load(SHIPPED.with_suffix(".yaml").read_text())
    spec.update(manifest, sha256=sha256_of(model))
    model.with_suffix(".yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return model
