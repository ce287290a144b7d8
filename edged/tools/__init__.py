"""Offline model tools: INT8 calibration (Q/DQ), FP16 conversion, the TensorRT build driver."""
