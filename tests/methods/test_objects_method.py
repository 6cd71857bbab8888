"""The objects method end to end on tiny in-memory videos: both phases, the track cache, resume, the predictor."""
import numpy as np
import pytest
import torch

from rvos.errors import ConfigError
from rvos.infer.predictor import Predictor
from rvos.methods.objects import Objects, train_objects
from rvos.models import build_model
from rvos.train.config import from_dict, TrainConfig
from rvos.train.track_cache import TrackDataset, TrackedVideo, assign_tracks, collate_tracks
from rvos.train.checkpoint import load_model_from_checkpoint

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import tiny_records  # noqa: E402


def objects_cfg(steps=4, refer_steps=4, **loop) -> TrainConfig:
    return from_dict(TrainConfig, {
        "data": {"clip": {"num_frames": 3, "size": [32, 48], "photometric": 0.0}},
        "model": {"vision": "tiny", "vision_pretrained": False, "vision_frozen": False, "text": "tiny",
                  "text_frozen": False, "dim": 16, "num_heads": 2, "fpn_dims": [16, 16, 8], "head": "objects",
                  "obj_queries": 3, "obj_layers": 3, "obj_mask_dim": 8, "ref_layers": 1, "ref_bins": 8},
        "method": {"name": "objects", "params": {"refer_steps": refer_steps, "refer_batch": 4, "refer_lr": 3e-3}},
        "optim": {"lr": 3e-3, "backbone_lr": 3e-3, "weight_decay": 0.0, "grad_clip": 1.0},
        "loop": {"steps": steps, "batch_size": 2, "checkpoint_every": 2, "log_every": 1, "seed": 0, "device": "cpu",
                 "progress": False, "plot": False, **loop}})


def test_both_phases_train_and_resume_continues(tmp_path):
    cfg = objects_cfg()
    cfg.data.negative_ratio = 1.0  # unrelated videos' sentences join the referrer's items
    last = train_objects(cfg, tmp_path / "run", records=tiny_records())
    assert set(last) == {"loss", "refer", "relevance"} and np.isfinite(last["loss"])
    assert (tmp_path / "run/objects/checkpoints/last.pt").is_file() and (tmp_path / "run/tracks.pt").is_file()
    model, saved = load_model_from_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert saved.model.head == "objects"
    # resume after the end: nothing retrains (phase 1 complete, tracks cached, phase 2 at its last step)
    assert train_objects(cfg, tmp_path / "run", records=tiny_records(), resume=True) == {}


def test_same_seed_same_losses(tmp_path):
    a = train_objects(objects_cfg(), tmp_path / "a", records=tiny_records())
    b = train_objects(objects_cfg(), tmp_path / "b", records=tiny_records())
    assert a == b


def test_learns_the_tiny_videos(tmp_path):
    """Object masks, tracks and the referrer together: the square, the bar and both are found on the videos
    it trained on (a seeded run; it checks that the parts connect, not how well they generalise)."""
    from rvos.infer.model_eval import evaluate_model

    recs = tiny_records()
    train_objects(objects_cfg(steps=150, refer_steps=150), tmp_path / "run", records=recs)
    model, _ = load_model_from_checkpoint(tmp_path / "run/checkpoints/last.pt")
    res = evaluate_model(model, recs)
    assert res.summary["J&F"] > 0.6, res.summary


def test_predictor_video_path_gates_and_reports_relevance(tmp_path):
    train_objects(objects_cfg(), tmp_path / "run", records=tiny_records())
    model, _ = load_model_from_checkpoint(tmp_path / "run/checkpoints/last.pt")
    video = tiny_records(1, n=11)[0].video  # 11 frames > ref_bins: the referrer sees 8 bins
    p = Predictor(model, window=4, keep_rle=True)
    res = p.segment(video, ["the red square", "a flying cat"])
    for r in res:
        assert len(r.areas) == len(r.scores) == len(r.relevance) == len(r.rles) == 11
        assert r.present is not None and 0.0 <= r.presence_score <= 1.0
        assert r.gated == (not r.present) and (not r.gated or sum(r.areas) == 0)
    # with the threshold at 0.99 nothing is selected; without gating the best track is kept anyway
    strict = Predictor(model, window=4, presence_threshold=0.99).segment(video, ["the red square"])[0]
    kept = Predictor(model, window=4, presence_threshold=0.99, gate=False).segment(video, ["the red square"])[0]
    assert strict.gated and sum(strict.areas) == 0 and not kept.gated


def test_colour_model_trains_from_cached_features_and_segments(tmp_path):
    """model.ref_colour with a frozen backbone: phase 1 reads cached features, the track cache reads the frames'
    colour beside them, and the Predictor passes its input frames to the descriptors."""
    from rvos.train.track_cache import load_tracks

    cfg = objects_cfg(feature_cache="memory")
    cfg.model.vision_frozen, cfg.model.ref_colour = True, True
    recs = tiny_records()
    train_objects(cfg, tmp_path / "run", records=recs)
    plain = objects_cfg()
    plain.model.vision_frozen = True
    width = build_model(plain.model).referrer.inp[0].in_features - 2  # descriptor width without colour, motion
    videos = load_tracks(tmp_path / "run/tracks.pt", recs)
    assert all(v.descriptors.shape[-1] == width + 3 for v in videos)
    colour = torch.cat([v.descriptors[..., -3:].flatten(0, 1) for v in videos]).float()
    assert colour.abs().max() <= 0.5 and colour.std(0).min() > 0  # mean RGB - 0.5, varying with the masks
    model, _ = load_model_from_checkpoint(tmp_path / "run/checkpoints/last.pt")
    assert model.colour
    res = Predictor(model, window=2).segment(recs[0].video, ["the red square"])[0]
    assert len(res.areas) == len(recs[0].video)


def test_assign_tracks_by_video_iou():
    t, h, w = 2, 4, 4
    a = torch.zeros(t, h, w, dtype=torch.bool)
    a[:, :2, :2] = True
    b = torch.zeros(t, h, w, dtype=torch.bool)
    b[:, 2:, 2:] = True
    pred = torch.stack([b, torch.zeros_like(a), a], 1)  # slot 0 = b, slot 2 = a, slot 1 empty
    frames = torch.ones(t, dtype=torch.bool)
    assert assign_tracks(pred, {7: a, 9: b}, {7: frames, 9: frames}, 0.3) == {2: 7, 0: 9}
    assert assign_tracks(pred, {7: a}, {7: torch.zeros(t, dtype=torch.bool)}, 0.3) == {}  # no mask frame: no IoU


def test_track_dataset_labels_and_flip():
    rec = tiny_records(2)
    desc = torch.zeros(6, 3, 10, dtype=torch.float16)
    desc[..., 5] = 0.9  # objectness channel: every slot is an object
    vis = {1: np.ones(6, bool), 2: np.ones(6, bool)}
    videos = [TrackedVideo(rec[0], False, desc, {0: 1, 2: 2}, vis), TrackedVideo(rec[0], True, desc, {0: 1, 2: 2}, vis),
              TrackedVideo(rec[1], False, desc, {1: 1}, vis)]
    ds = TrackDataset(videos)
    s = ds[0]  # video 0, "the red square on the left" -> object 1 -> slot 0
    assert s.labels.tolist() == [1.0, 0.0, 0.0] and s.relevance[:, 0].tolist() == [1.0] * 6
    both = ds[2]  # "both shapes", spans [(0, 2)]: relevance only in frames 0, 1
    assert both.labels.tolist() == [1.0, 0.0, 1.0] and both.relevance[:, 2].tolist() == [1, 1, 0, 0, 0, 0]
    assert ds[4].text == "the red square on the right"  # the mirrored video's sentence
    assert ds[3].labels.sum() == 0  # the negative refers to nothing
    b = collate_tracks([ds[0], ds[2]], bins=4)
    assert b.inputs.tokens.shape == (2, 3, 4, 12) and b.relevance.shape == (2, 3, 4) and b.size == (2, 4)


def test_errors_name_the_fix():
    model = build_model(objects_cfg().model)
    with pytest.raises(ConfigError, match="data.clip.instances"):
        from rvos.data.clips import ClipDataset, collate

        batch = collate([ClipDataset(tiny_records(1), objects_cfg().data.clip)[0]])
        Objects(model)(batch)
    from rvos.methods.simrvos import SimRVOS

    with pytest.raises(ConfigError, match="method.name=objects"):
        SimRVOS(model)
    with pytest.raises(ConfigError, match="model.head=objects"):
        Objects(build_model(from_dict(TrainConfig, {"model": {"vision": "tiny", "text": "tiny"}}).model))


def test_presence_threshold_is_the_models_own_unless_given():
    """An objects model carries its operating point (model.ref_threshold); other models default to 0.5."""
    from dataclasses import replace

    from rvos.models import ModelConfig

    cfg = replace(objects_cfg().model, ref_threshold=0.2, ref_dropout=0.1)
    model = build_model(cfg)
    assert Predictor(model).presence_threshold == pytest.approx(0.2)
    assert Predictor(model, presence_threshold=0.7).presence_threshold == pytest.approx(0.7)
    single = build_model(ModelConfig(vision="tiny", vision_pretrained=False, text="tiny", dim=16, num_heads=2,
                                     fpn_dims=(16, 16, 8), mask_dim=8, dyn_hidden=8))
    assert Predictor(single).presence_threshold == 0.5
    for bad in ({"ref_threshold": 0.0}, {"ref_threshold": 1.0}, {"ref_dropout": 1.0}):
        with pytest.raises(ConfigError, match="ref_"):
            replace(cfg, **bad)
