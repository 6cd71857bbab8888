"""`rvos export` and `--runtime onnx` with a tiny checkpoint that has every optional part that changes the graph:
multi-query head (boxes), BLCL, stride-16 fusion, temporal layers and R2-VOS (clip form, presence). Parity of
the onnxruntime Predictor with PyTorch's, and the errors for a missing extra and bad inputs."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from export_helpers import balanced_threshold, davis_clips, foreground, ious, segment_both_runtimes
from rvos.cli import main
from rvos.errors import ConfigError
from rvos.infer.predictor import Predictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

MAX_FRAMES = 6  # the tiny model's temporal_max_frames


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from rvos.models import ModelConfig, build_model
    from rvos.train.checkpoint import FORMAT, atomic_torch_save
    from rvos.train.config import TrainConfig, to_dict

    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(vision="tiny", text="tiny", dim=32, head="multi", num_queries=3, blcl=True,
                                        fusion_stride=16, r2=True, temporal_layers=1, temporal_max_frames=MAX_FRAMES))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    atomic_torch_save({"format": FORMAT, "config": to_dict(cfg), "model": build_model(cfg.model).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    assert main(["export", str(checkpoint), "--onnx", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def models(checkpoint, exported):
    from rvos.export import OnnxModel
    from rvos.train.checkpoint import load_model_from_checkpoint

    return load_model_from_checkpoint(checkpoint)[0], OnnxModel(exported)


def test_export_folder(exported, capsys):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert {p.name for p in exported.iterdir()} == {"manifest.json", "vision.onnx", "decode.onnx", "text.onnx"}
    assert manifest["decode_outputs"] == ["mask_logits", "scores", "boxes", "presence"]
    assert manifest["clip"] is True and manifest["max_frames"] == MAX_FRAMES
    assert manifest["config"]["model"]["head"] == "multi"
    # checked on another frame count, size and sentence length than it was traced on
    assert manifest["parity"]["input"] != [manifest["trace"][0], 3, *manifest["trace"][1:]]
    assert all(v["max_abs"] < 1e-3 for v in manifest["parity"]["outputs"].values())


def test_predictor_parity_multi_query_clip_model(models, davis_sample):
    model, onnx = models
    video, sentence = davis_clips(davis_sample, 7)[1]  # camel, 7 frames: windows of 4 and 3
    for s in (sentence, "the brown camel on the left"):
        kw = dict(keep_rle=True, threshold=balanced_threshold(model, video, s, size=96), size=96, window=4, gate=False)
        r, g = Predictor(model, **kw).segment(video, [s])[0], Predictor(onnx, **kw).segment(video, [s])[0]
        assert 0.05 < foreground(r.rles) < 0.95
        assert min(ious(r.rles, g.rles)) >= 0.99
        assert g.query == r.query
        assert g.presence_score == pytest.approx(r.presence_score, abs=1e-5)
        assert g.scores == pytest.approx(r.scores, abs=1e-5)
    # direct decode: boxes come back too
    x = torch.rand(3, 3, 64, 96)
    text = model.encode_text(["a camel"])
    a, b = model.decode(model.encode_frames(x), text, 1, 3), onnx.decode(onnx.encode_frames(x), onnx.encode_text(["a camel"]), 1, 3)
    assert b.boxes.shape == a.boxes.shape and torch.allclose(a.boxes, b.boxes, atol=1e-5)


def test_segment_runtime_onnx_matches_torch(exported, checkpoint, tmp_path, davis_sample, models, capsys):
    model, _ = models
    video, sentence = davis_clips(davis_sample, 5)[3]
    a, b = segment_both_runtimes(checkpoint, exported, model, video, sentence, tmp_path)
    assert "on onnxruntime" in capsys.readouterr().out
    assert a["query"] == b["query"]
    assert min(ious([f["rle"] for f in a["frames"]], [f["rle"] for f in b["frames"]])) >= 0.99


def test_clip_form_limits_and_input_errors(models):
    model, onnx = models
    feats = onnx.encode_frames(torch.rand(MAX_FRAMES + 1, 3, 32, 32))
    with pytest.raises(ConfigError, match="temporal_max_frames"):
        onnx.decode(feats, onnx.encode_text(["a camel"]), 1, MAX_FRAMES + 1)
    with pytest.raises(ConfigError, match="multiples of 32"):
        onnx.encode_frames(torch.rand(1, 3, 40, 32))
    with pytest.raises(ConfigError, match="empty sentence"):
        onnx.encode_text(["  "])
    with pytest.raises(ConfigError, match="CPU"):
        onnx.to("cuda")


def test_missing_extra_says_how_to_install(monkeypatch, checkpoint, exported, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    assert main(["export", str(checkpoint), "--onnx", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime" in err and "pip install 'rvos[onnx]'" in err and "onnxruntime==" in err
    assert not (tmp_path / "x").exists()
    from rvos.export import OnnxModel

    with pytest.raises(ConfigError, match=r"pip install 'rvos\[onnx\]'"):
        OnnxModel(exported)


def test_bad_checkpoint_and_folder_errors(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pt"), "--onnx", str(tmp_path / "o")]) == 2
    assert "missing checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "--onnx", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "checkpoint" in err
    assert not (tmp_path / "o").exists()
    from rvos.export import OnnxModel

    with pytest.raises(ConfigError, match="rvos export"):
        OnnxModel(tmp_path)  # a folder without manifest.json
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ConfigError, match="not an rvos ONNX manifest"):
        OnnxModel(tmp_path)


def test_export_refuses_a_folder_that_is_not_an_export(checkpoint, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["export", str(checkpoint), "--onnx", str(tmp_path)]) == 2
    assert "not an rvos ONNX export" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_move_into_place_replaces_an_earlier_export(tmp_path):
    from rvos.export.onnx_export import _move_into_place

    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "manifest.json").write_text("old")
    new.mkdir()
    (new / "manifest.json").write_text("new")
    _move_into_place(new, out)
    assert (out / "manifest.json").read_text() == "new" and not new.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


class _OtherModel(torch.nn.Module):  # a model class the exporter does not know
    def __init__(self):
        super().__init__()
        from types import SimpleNamespace

        self.config = SimpleNamespace(head="mine")


def test_unsupported_model_error_names_checkpoint_and_what_is_supported(monkeypatch, tmp_path, capsys):
    import rvos.train.checkpoint as ckpt
    from rvos.export import export_onnx

    ckpt_path = tmp_path / "other.pt"
    ckpt_path.write_bytes(b"")  # never read: the loader is replaced below
    monkeypatch.setattr(ckpt, "load_model_from_checkpoint", lambda path: (_OtherModel(), None))
    assert main(["export", str(ckpt_path), "--onnx", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{ckpt_path}: _OtherModel (model.head=mine) cannot be exported to ONNX" in err
    assert "supports RVOSModel with model.head=single or multi" in err and "ObjectRVOSModel" in err
    assert "Traceback" not in err
    with pytest.raises(ConfigError, match=r"^x\.pt: Linear cannot be exported to ONNX\. ONNX export supports "):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "o", source="x.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pt"]  # nothing written
