"""`rvos export` and `--runtime onnx` for the objects head (model.head=objects): vision, objects and refer graphs
around the Python tracker. Parity of the onnxruntime Predictor with PyTorch's on real frames, and the CLI path."""
from __future__ import annotations

import json

import pytest
import torch

from export_helpers import balanced_threshold, davis_clips, foreground, ious, segment_both_runtimes
from rvos.cli import main
from rvos.errors import ConfigError
from rvos.infer.predictor import Predictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def tiny_checkpoint(folder, **model):
    from rvos.models import ModelConfig, build_model
    from rvos.train.checkpoint import FORMAT, atomic_torch_save
    from rvos.train.config import TrainConfig, to_dict

    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(vision="tiny", text="tiny", dim=16, num_heads=2, fpn_dims=(16, 16, 8),
                                        head="objects", obj_queries=3, obj_layers=2, obj_mask_dim=8, ref_layers=1,
                                        ref_bins=4, ref_threshold=0.3, **model))
    path = folder / "objects.pt"
    atomic_torch_save({"format": FORMAT, "config": to_dict(cfg), "model": build_model(cfg.model).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "objects-onnx"
    assert main(["export", str(checkpoint), "--onnx", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def models(checkpoint, exported):
    from rvos.export import OnnxModel
    from rvos.train.checkpoint import load_model_from_checkpoint

    return load_model_from_checkpoint(checkpoint)[0].eval(), OnnxModel(exported)


def test_export_folder_and_runtime_kind(exported, models):
    from rvos.export.runtime import OnnxObjectModel
    from rvos.infer.predictor import default_presence_threshold

    manifest = json.loads((exported / "manifest.json").read_text())
    assert {p.name for p in exported.iterdir()} == {"manifest.json", "vision.onnx", "objects.onnx", "refer.onnx",
                                                    "text.onnx"}
    assert manifest["kind"] == "objects" and manifest["bins"] == 4
    assert set(manifest["parity"]["outputs"]) >= {"embed", "logits", "masks", "track_logits", "relevance"}
    assert all(v["max_abs"] < 1e-3 for v in manifest["parity"]["outputs"].values())
    model, onnx = models
    assert isinstance(onnx, OnnxObjectModel) and onnx.video_level and onnx.momentum == model.momentum
    assert default_presence_threshold(onnx) == pytest.approx(0.3)  # the checkpoint's operating point travels
    with pytest.raises(ConfigError, match="objects-head export"):
        onnx.decode([], None, 1, 1)


def test_refer_graph_takes_other_lengths_and_sentence_counts(models):
    """Refer is traced on 2 sentences and 2 time steps; any count up to the bins must give PyTorch's logits."""
    from rvos.models.referring import video_inputs

    model, onnx = models
    gen = torch.Generator().manual_seed(3)
    for t, s in ((1, 1), (4, 3), (9, 5)):  # 9 frames resample to the 4 bins
        desc = torch.rand(t, 3, model.referrer.inp[0].in_features - 2, generator=gen)
        one = video_inputs([desc], model.bins)
        sentences = [f"the object number {i} on the left" * (i % 2 + 1) for i in range(s)]
        text = model.encode_text(sentences)
        rep = type(one)(*(x.expand(s, *x.shape[1:]) for x in (one.tokens, one.alive, one.frame_pos, one.valid)))
        for a, b in zip(model.refer(rep, text), onnx.refer(rep, onnx.encode_text(sentences))):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4)


def assert_predictor_parity(model, onnx, davis_sample):
    video, sentence = davis_clips(davis_sample, 7)[1]  # camel, 7 frames: windows of 4 and 3
    thr = balanced_threshold(model, video, sentence, size=96)
    sentences = [sentence, "the brown camel on the left"]
    kw = dict(keep_rle=True, threshold=thr, size=96, window=4, gate=False)
    ref, got = Predictor(model, **kw).segment(video, sentences), Predictor(onnx, **kw).segment(video, sentences)
    for r, g in zip(ref, got):
        assert 0.05 < foreground(r.rles) < 0.95  # the check is not on empty (or full) masks
        assert min(ious(r.rles, g.rles)) >= 0.99
        assert g.query == r.query and g.present == r.present
        assert g.presence_score == pytest.approx(r.presence_score, abs=1e-4)
        assert g.scores == pytest.approx(r.scores, abs=1e-4)
        assert g.relevance == pytest.approx(r.relevance, abs=1e-4)


def test_predictor_parity_on_real_frames(models, davis_sample):
    assert_predictor_parity(*models, davis_sample)


def test_colour_model_exports_and_reads_the_frames(tmp_path, davis_sample):
    """model.ref_colour: the manifest says so, and the onnxruntime Predictor passes the frames to the descriptors."""
    from rvos.export import OnnxModel
    from rvos.train.checkpoint import load_model_from_checkpoint

    path = tiny_checkpoint(tmp_path, ref_colour=True)
    assert main(["export", str(path), "--onnx", str(tmp_path / "onnx")]) == 0
    assert json.loads((tmp_path / "onnx/manifest.json").read_text())["colour"] is True
    model, onnx = load_model_from_checkpoint(path)[0].eval(), OnnxModel(tmp_path / "onnx")
    assert onnx.colour
    assert_predictor_parity(model, onnx, davis_sample)


def test_segment_runtime_onnx_matches_torch(exported, checkpoint, tmp_path, davis_sample, models, capsys):
    model, _ = models
    video, sentence = davis_clips(davis_sample, 5)[3]
    a, b = segment_both_runtimes(checkpoint, exported, model, video, sentence, tmp_path)
    assert "on onnxruntime" in capsys.readouterr().out
    assert a["query"] == b["query"]
    assert min(ious([f["rle"] for f in a["frames"]], [f["rle"] for f in b["frames"]])) >= 0.99
