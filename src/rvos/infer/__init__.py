"""rvos.infer: the streaming predictor for any video, its writers (palette PNG, overlay MP4, RLE JSON, zip) and
prediction over dataset records for the evaluator."""
from rvos.infer.predictor import FrameSink, Predictor, SegmentResult
from rvos.infer.records import predict_records
from rvos.infer.writers import JsonSink, OverlayVideoSink, PaletteSink, zip_pngs

__all__ = ["FrameSink", "Predictor", "SegmentResult", "predict_records", "JsonSink", "OverlayVideoSink",
           "PaletteSink", "zip_pngs"]
