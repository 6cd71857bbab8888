"""ONNX export of the per-frame model and the text encoder, and an onnxruntime model for the streaming Predictor.

`export_onnx(model, folder)` (or `rvos export CHECKPOINT --onnx FOLDER`) writes vision.onnx, decode.onnx and
text.onnx with a manifest; `OnnxModel(folder)` runs them behind the calls the Predictor makes
(`rvos segment --runtime onnx`). Needs the optional extra: pip install 'rvos[onnx]'.
"""
from rvos.export.onnx_export import export_onnx
from rvos.export.runtime import OnnxModel, read_manifest

__all__ = ["export_onnx", "OnnxModel", "read_manifest"]
