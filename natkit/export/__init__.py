"""Deployment: ONNX export checked by onnxruntime (fp32 and int8)."""

from natkit.export.onnx import OPSET, TOLERANCE, compare, export_checked, export_onnx, run, session

__all__ = ["OPSET", "TOLERANCE", "compare", "export_checked", "export_onnx", "run", "session"]
