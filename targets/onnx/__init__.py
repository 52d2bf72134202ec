"""ONNX target: export with ONNX Runtime's graph settings (:mod:`.export`), weight-integer folding of QDQ
models (:mod:`.qdq`) and the ONNX Runtime runner (:mod:`.runtime`)."""

from edgeir.targets.onnx.export import OPSET, TARGET, OnnxTarget

__all__ = ["OPSET", "TARGET", "OnnxTarget"]
