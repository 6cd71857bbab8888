"""Parity of the onnxruntime path with PyTorch on the DAVIS sample, with the real encoders (EfficientNet-Lite0
ImageNet weights, MiniLM) and a single-query SimRVOS head (random weights, seed 0): every frame's mask IoU >= 0.99."""
from __future__ import annotations

import pytest
import torch

from export_helpers import balanced_threshold, davis_clips, foreground, ious
from rvos.infer.predictor import Predictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

FRAMES = 4  # per DAVIS-sample video (6 videos), at the full 480x854


@pytest.fixture(scope="module")
def real_export(tmp_path_factory):
    from rvos.export import OnnxModel, export_onnx
    from rvos.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig()).eval()
    out = tmp_path_factory.mktemp("onnx") / "lite0"
    manifest = export_onnx(model, out)
    return model, OnnxModel(out), manifest


@pytest.mark.slow
def test_davis_masks_match_pytorch(real_export, davis_sample):
    model, onnx, manifest = real_export
    assert manifest["decode_outputs"] == ["mask_logits", "scores"] and not manifest["clip"]
    assert manifest["tokenizer"]["kind"] == "hf"
    worst = []
    for video, sentence in davis_clips(davis_sample, FRAMES):
        thr = balanced_threshold(model, video, sentence)
        ref = Predictor(model, keep_rle=True, threshold=thr).segment(video, [sentence])[0]
        got = Predictor(onnx, keep_rle=True, threshold=thr).segment(video, [sentence])[0]
        assert 0.2 < foreground(ref.rles) < 0.8, (video.video_id, foreground(ref.rles))  # masks that test something
        iou = ious(ref.rles, got.rles)
        worst.append(min(iou))
        assert min(iou) >= 0.99, (video.video_id, sentence, iou)
        assert got.scores == pytest.approx(ref.scores, abs=1e-4)
    assert len(worst) == 6


def test_text_features_match_minilm(real_export):
    model, onnx, _ = real_export
    sentences = ["a black car moving through a roundabout", "a goat"]
    ref, got = model.text._encode(sentences), onnx.encode_text(sentences)
    assert torch.equal(ref.pad_mask, got.pad_mask)
    assert torch.allclose(ref.sentence, got.sentence, atol=1e-4)
    real = ~ref.pad_mask
    assert torch.allclose(ref.words[real], got.words[real], atol=1e-4)
