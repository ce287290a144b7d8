"""Where the shipped files are, for tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "engines" / "nanodet-g-416.onnx"
CLIP = ROOT / "samples" / "vtest.mp4"
DEMO = ROOT / "configs" / "demo.yaml"
SEGMENTER = ROOT / "engines" / "selfie-256.onnx"
# evaluation data beside the checkout (never committed): ../shared/datasets
SHARED = ROOT.parent / "shared"
