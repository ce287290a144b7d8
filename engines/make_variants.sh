#!/usr/bin/env bash
# Make the shipped detector files from the batch-1 NanoDet conversion:
#
#   BATCH1.onnx (engines/convert_nanodet.sh's output; sha256 = the FP32 manifest's derived_from)
#   -> edged convert --dynamic-batch   -> nanodet-g-416.onnx       (FP32, any batch size)
#   -> edged calibrate (the three shipped samples, 400 frames, MinMax, head convolutions FP32)
#                                      -> nanodet-g-416-int8.onnx  (INT8 Q/DQ, any batch size)
#
# Only the shipped samples are used for calibration: their licences allow it (see
# samples/README.md); the MOT15 sequences that measure the accuracy are not.
#
# Usage: engines/make_variants.sh BATCH1.onnx [OUTDIR]   (default OUTDIR: a temporary folder)
#   EDGED=...  the edged command (default: .venv/bin/edged of this checkout, else edged)
#
# Each result is compared with the shipped file: the same sha256, or (for a conversion whose
# bytes differ, see convert_nanodet.sh) the same outputs on real frames. Exit 0 when both
# match, 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
batch1="$(realpath "${1:?usage: make_variants.sh BATCH1.onnx [OUTDIR]}")"
out="${2:-$(mktemp -d "${TMPDIR:-/tmp}/edged-variants.XXXXXX")}"
mkdir -p "$out"
EDGED="${EDGED:-$root/.venv/bin/edged}"
[[ -x "$EDGED" ]] || EDGED=edged
python="$(dirname "$(command -v "$EDGED")")/python"
[[ -x "$python" ]] || python=python3

# the batch-1 file needs a manifest of its own: the shipped one, describing that file
work="$out/batch1"
mkdir -p "$work"
cp "$batch1" "$work/nanodet-g-416.onnx"
"$python" - "$here/nanodet-g-416.yaml" "$work/nanodet-g-416.onnx" <<'PY'
import hashlib
import sys
from pathlib import Path

import yaml

data = yaml.safe_load(Path(sys.argv[1]).read_text())
model = Path(sys.argv[2])
for key in ("derived_from", "recipe", "measured"):
    data.pop(key, None)
data["sha256"] = hashlib.sha256(model.read_bytes()).hexdigest()
model.with_suffix(".yaml").write_text(yaml.safe_dump(data, sort_keys=False))
PY

echo "== dynamic batch" >&2
"$EDGED" convert "$work/nanodet-g-416.onnx" --dynamic-batch -o "$out/nanodet-g-416.onnx"
echo "== INT8 from the shipped samples" >&2
"$EDGED" calibrate "$out/nanodet-g-416.onnx" --frames 400 --method minmax --keep-head-fp32 \
  --from "$root/samples/vtest.mp4" "$root/samples/shelf-bottles.mp4" \
  "$root/samples/traffic-street-topdown.mp4" -o "$out/nanodet-g-416-int8.onnx"

echo "== compared with the shipped files" >&2
"$python" - "$here" "$out" "$root/samples/vtest.mp4" <<'PY'
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

shipped, made, clip = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
cap = cv2.VideoCapture(clip)
frames = []
while len(frames) < 8:
    ok, frame = cap.read()
    if not ok:
        break
    x = cv2.resize(frame, (416, 416)).astype(np.float32)
    frames.append(((x - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]).transpose(2, 0, 1))
batch = np.stack(frames).astype(np.float32)
ok = True
for name in ("nanodet-g-416.onnx", "nanodet-g-416-int8.onnx"):
    a, b = shipped / name, made / name
    same = hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    if same:
        print(f"{name}: sha256 MATCH")
        continue
    sa = ort.InferenceSession(str(a), providers=["CPUExecutionProvider"])
    sb = ort.InferenceSession(str(b), providers=["CPUExecutionProvider"])
    feed = {sa.get_inputs()[0].name: batch}
    worst = max(float(np.abs(x - y).max()) for x, y in zip(sa.run(None, feed), sb.run(None, feed)))
    # INT8 scales follow the calibration; equal FP32 inputs give equal files
    limit = 1e-5 if "int8" not in name else 0.05
    print(f"{name}: sha256 differs; outputs on {len(batch)} real frames differ by {worst:.3g}")
    ok &= worst <= limit
print("EQUIVALENT to the shipped files" if ok else "NOT equivalent to the shipped files")
sys.exit(0 if ok else 1)
PY
echo "made in $out" >&2
