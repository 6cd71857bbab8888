"""TGL method (paper 003): the language path's frames by hand on a mocked output, the switches and config errors, the
propagation path's supervision, end-to-end training with a tiny model (moment-guided sampling, OSS, MDP), and
moment-guided dual-path inference through the Predictor and `rvos segment`."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))  # tests/train/train_helpers.py

from rvos.cli import main  # noqa: E402
from rvos.data.batch import Batch  # noqa: E402
from rvos.data.regimes import apply_regime  # noqa: E402
from rvos.data.types import Expression, TargetKind  # noqa: E402
from rvos.errors import ConfigError  # noqa: E402
from rvos.infer.mdp import nearest  # noqa: E402
from rvos.infer.predictor import Predictor  # noqa: E402
from rvos.methods.tgl import DEFAULT_WEIGHTS, TGL, TGLConfig  # noqa: E402
from rvos.models import ModelConfig, build_model  # noqa: E402
from rvos.models.output import RVOSOutput  # noqa: E402
from rvos.train.checkpoint import load_checkpoint, load_model_from_checkpoint  # noqa: E402
from rvos.train.config import TrainConfig, from_dict  # noqa: E402
from rvos.train.loop import Trainer  # noqa: E402
from train_helpers import square_record, tiny_model_config  # noqa: E402

M = int(TargetKind.MASK)


def tiny(moment=True, propagation=True, **kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(vision="tiny", text="tiny", dim=16, num_heads=2, fpn_dims=(16, 16, 8), mask_dim=8,
                                   dyn_hidden=8, vision_pretrained=False, moment=moment, propagation=propagation, **kw))


def mocked_batch(in_span, positive=True, T=2) -> Batch:
    """One clip of T frames of 2x2 pixels, target the top-left pixel."""
    masks = torch.zeros(1, T, 2, 2)
    if positive:
        masks[:, :, 0, 0] = 1
    return Batch(frames=torch.rand(1, T, 3, 2, 2), target_kind=torch.full((1, T), M), masks=masks,
                 boxes=torch.zeros(1, T, 4), present=torch.full((1, T), positive), valid=torch.ones(1, T, dtype=torch.bool),
                 in_span=torch.tensor([in_span]), positive=torch.tensor([positive]), text=["the box"], video_ids=["v"],
                 exp_ids=["0"], frame_index=torch.arange(T)[None], span_known=torch.tensor([True]))


def mocked_output(T=2) -> RVOSOutput:
    """Frame 0: right on the target pixel (logit 20 there, -20 elsewhere); frame 1: exactly wrong."""
    logits = torch.full((1, T, 1, 2, 2), -20.0)
    logits[0, 0, 0, 0, 0] = 20.0
    logits[0, 1, 0] = 20.0
    logits[0, 1, 0, 0, 0] = -20.0
    return RVOSOutput(mask_logits=logits, scores=torch.zeros(1, T, 1), filters=torch.zeros(1, T, 1, 1),
                      mask_features=torch.zeros(1, T, 1, 2, 2), sentence=torch.zeros(1, 4),
                      relevance=torch.tensor([[0.0, math.log(3.0)]]))


def test_language_path_frames_and_moment_by_hand():
    out, batch = mocked_output(), mocked_batch([True, False])
    # frame 1 (where the sentence does not hold) is the propagation path's: the language path is judged on frame 0
    span = TGL(tiny(), TGLConfig(upsample_logits=False, mdp=False, language_frames="span"))
    parts = span.combine(span.losses(out, batch))
    dice1 = 1 - (0 + 1) / (3 + 1 + 1)  # frame 1: p = (0, 1, 1, 1), t = (1, 0, 0, 0) -> 0.8
    assert parts["dice"].item() == pytest.approx(0.0, abs=1e-6)
    every = TGL(tiny(), TGLConfig(upsample_logits=False, mdp=False, language_frames="all"))
    parts_all = every.combine(every.losses(out, batch))
    assert parts_all["dice"].item() == pytest.approx(dice1 / 2, rel=1e-5)
    # moment: BCE(0, 1) = ln 2 on frame 0, BCE(ln 3, 0) = ln 4 on frame 1
    assert parts["moment"].item() == pytest.approx(1.5 * math.log(2), rel=1e-6) and parts["moment_skipped"] == 0
    assert parts["loss"].item() == pytest.approx(5 * parts["dice"].item() + 2 * parts["focal"].item()
                                                 + 2 * parts["moment"].item(), rel=1e-6)
    # a negative pair keeps all its frames in the language terms (its target is empty everywhere)
    neg = span.losses(out, mocked_batch([False, False], positive=False))
    assert neg["dice"].item() > 0.5
    # unknown spans: no moment part, flagged, the total holds the other parts only
    unknown = replace(batch, span_known=torch.tensor([False]))
    p = span.combine(span.losses(out, unknown))
    assert "moment" not in p and p["moment_skipped"] == 1
    assert p["loss"].item() == pytest.approx(5 * p["dice"].item() + 2 * p["focal"].item(), rel=1e-6)
    assert p["dice"].item() == pytest.approx(dice1 / 2, rel=1e-5)  # unknown spans: every frame is the language path's


def test_config_errors_and_weights():
    with pytest.raises(ConfigError, match="model.moment=true"):
        TGL(tiny(moment=False, propagation=False), TGLConfig(mdp=False))
    with pytest.raises(ConfigError, match="model.propagation=true"):
        TGL(tiny(propagation=False))
    with pytest.raises(ConfigError, match="language_frames"):
        TGL(tiny(), TGLConfig(language_frames="some"))
    with pytest.raises(ConfigError, match="memory_mask"):
        TGL(tiny(), TGLConfig(memory_mask="oracle"))
    with pytest.raises(ConfigError, match="unknown parts"):
        TGL(tiny(), TGLConfig(weights={"dice": 5, "span_iou": 1}))
    assert DEFAULT_WEIGHTS["single"] == {"dice": 5.0, "focal": 2.0, "moment": 2.0, "prop_dice": 5.0, "prop_focal": 2.0}
    assert set(TGL(tiny(), TGLConfig(mdp=False)).weights) == {"dice", "focal", "moment"}
    assert set(TGL(tiny(moment=False, propagation=False), TGLConfig(moment=False, mdp=False)).weights) == {"dice", "focal"}


def real_batch(in_span, kinds=None, T=3, h=32, w=48) -> Batch:
    rec = square_record("v", n=T, h=h, w=w)
    frames = torch.from_numpy(np.stack([rec.video.frame(i) for i in range(T)])).permute(0, 3, 1, 2).float()[None] / 255
    masks = torch.from_numpy(np.stack([rec.tracks[1].targets[i].load_mask() for i in range(T)])).float()[None]
    return Batch(frames=frames, target_kind=torch.tensor([kinds or [M] * T]), masks=masks, boxes=torch.zeros(1, T, 4),
                 present=torch.ones(1, T, dtype=torch.bool), valid=torch.ones(1, T, dtype=torch.bool),
                 in_span=torch.tensor([in_span]), positive=torch.tensor([True]), text=["the red square"],
                 video_ids=["v"], exp_ids=["0"], frame_index=torch.arange(T)[None], span_known=torch.tensor([True]))


@pytest.mark.parametrize("memory_mask", ["gt", "pred"])
def test_propagation_path_is_supervised_and_trained(memory_mask):
    method = TGL(tiny(), TGLConfig(upsample_logits=False, memory_mask=memory_mask))
    parts = method(real_batch([True, False, True]))
    assert parts["prop_dice"].item() > 0 and math.isfinite(parts["loss"].item())
    parts["loss"].backward()
    prop = method.model.propagation
    for p in (prop.key.weight, prop.log_tau, prop.refine[-1].weight, prop.p3.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert method.model.moment.out.weight.grad.abs().sum() > 0
    # only one referred frame, and it is the only MASK frame: it has no memory, nothing to propagate
    method.zero_grad()
    lonely = method(real_batch([True, False, False], kinds=[M, 0, 0]))
    assert lonely["prop_dice"].item() == 0 and lonely["prop_focal"].item() == 0


def spans_records():
    """Two 6-frame videos: 'the red square' holds throughout, 'the blue bar' only in frames 2-4 (a partial
    expression), 'both shapes' refers to the square in 0-1 and to the bar in 2-4; a negative holds nowhere."""
    out = []
    for i in range(2):
        r = square_record(f"v{i}", n=6, seed=i)
        out.append(replace(r, expressions=[
            Expression("0", "the red square", [1], spans=[(0, 6)], object_spans={1: [(0, 6)]}),
            Expression("1", "the blue bar while it waits", [2], spans=[(2, 5)], object_spans={2: [(2, 5)]}),
            Expression("2", "both shapes", [1, 2], spans=[(0, 5)], object_spans={1: [(0, 2)], 2: [(2, 5)]}),
            Expression("3", "a flying cat", [], spans=[], object_spans={})]))
    return apply_regime(out, "spans")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """40 steps of the full TGL recipe (moment head, MGS, MDP, OSS) on a tiny model; (run folder, trainer)."""
    cfg = from_dict(TrainConfig, {
        "data": {"regime": "spans", "clip": {"num_frames": 3, "size": [32, 48], "sampling": "moment", "oss": True,
                                             "photometric": 0.0}},
        "model": tiny_model_config().to_dict() | {"moment": True, "propagation": True},
        "method": {"name": "tgl", "params": {"upsample_logits": False}},
        "optim": {"lr": 3e-3, "backbone_lr": 3e-3, "grad_clip": 1.0, "weight_decay": 0.0},
        "loop": {"steps": 40, "batch_size": 4, "checkpoint_every": 40, "log_every": 1, "progress": False, "plot": False}})
    out = tmp_path_factory.mktemp("tglrun")
    trainer = Trainer(cfg, out, records=spans_records())
    trainer.fit()
    return out, trainer


def test_trains_end_to_end(trained):
    out, _ = trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert all(math.isfinite(r["loss"]) and r["moment_skipped"] == 0 for r in rows)
    early = {k: np.mean([r[k] for r in rows[:8]]) for k in ("loss", "moment", "prop_dice")}
    late = {k: np.mean([r[k] for r in rows[-8:]]) for k in ("loss", "moment", "prop_dice")}
    assert late["loss"] < early["loss"] and late["moment"] < early["moment"] and late["prop_dice"] < early["prop_dice"]
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["config"]["method"]["name"] == "tgl" and any(k.startswith("propagation.") for k in ckpt["model"])
    model, _ = load_model_from_checkpoint(out / "checkpoints" / "last.pt")
    assert model.moment is not None and model.propagation is not None


class FixedRelevance(torch.nn.Module):
    """A moment head that returns preset per-frame logits, in frame order across the predictor's windows."""

    def __init__(self, logits):
        super().__init__()
        self.logits, self.pos = list(logits), 0

    def forward(self, visual, sentence, mask_logits=None, scores=None):
        t = visual.shape[1]
        out = torch.tensor(self.logits[self.pos:self.pos + t], dtype=visual.dtype)[None]
        self.pos += t
        return out


def masks_of(model, video, **kw):
    res = Predictor(model, keep_rle=True, window=4, **kw).segment(video, ["the red square"])[0]
    from rvos.infer.rle import decode_rle

    return res, [decode_rle(r) for r in res.rles]


def test_predictor_picks_the_path_by_relevance(trained):
    import copy

    from rvos.data.frames import ArrayFrames
    from rvos.data.types import Video

    model = copy.deepcopy(trained[1].model).eval()
    with torch.no_grad():  # a sharp, prior-free, unrefined read: propagation copies the matching memory cells' mask
        prop = model.propagation
        prop.log_tau.fill_(math.log(0.01))
        prop.sigma = 0.0
        prop.gain.fill_(1.0)
        prop.refine[-1].weight.zero_()
        prop.refine[-1].bias.zero_()
    rec = square_record("s", n=6)
    big = np.kron(rec.video.frame(0), np.ones((2, 2, 1), np.uint8))  # 64x96: an 8x12 grid at stride 8
    still = np.stack([big] * 6)  # a still video: propagation must reproduce the referred frames' mask
    video = Video("still", ArrayFrames(still), 64, 96)
    _, lang = masks_of(model, video, mdp=False)
    assert lang[0].any()
    model.moment = FixedRelevance([9.0] * 6)  # referred everywhere: the language path everywhere
    res, every = masks_of(model, video)
    assert res.spans == [(0, 6)] and all(np.array_equal(a, b) for a, b in zip(every, lang))
    model.moment = FixedRelevance([-9.0] * 6)  # referred nowhere: the sentence refers to nothing here
    res, none = masks_of(model, video)
    assert res.spans == [] and not any(m.any() for m in none)
    model.moment = FixedRelevance([9.0, 9.0, -9.0, -9.0, -9.0, 9.0])
    res, mixed = masks_of(model, video)
    assert res.spans == [(0, 2), (5, 6)]
    for t in (0, 1, 5):
        assert np.array_equal(mixed[t], lang[t])
    iou = lambda a, b: (a & b).sum() / max((a | b).sum(), 1)  # noqa: E731
    for t in (2, 3, 4):  # propagated from frames 0, 1 and 5: the same mask, at stride-8 detail
        assert iou(mixed[t], lang[t]) > 0.6, iou(mixed[t], lang[t])
    assert np.array_equal(mixed[2], mixed[3])  # frames 2 and 3 read the same memory frames (no spatial prior)


def test_nearest_memory_frames():
    assert nearest([1, 5, 9], 4, 2) == [1, 5] and nearest([1, 5, 9], 7, 2) == [5, 9]
    assert nearest([1, 5, 9], 3, 2) == [1, 5]  # tie (distance 2 both ways): the earlier first
    assert nearest([3], 0, 4) == [3] and nearest([2, 3, 4], 10, 2) == [3, 4]


def test_segment_reports_predicted_spans(trained, tmp_path, capsys):
    folder = tmp_path / "video"
    folder.mkdir()
    rec = square_record("x", n=5, h=32, w=48)
    for i in range(5):
        Image.fromarray(rec.video.frame(i)).save(folder / f"{i:05d}.jpg")
    out = tmp_path / "seg"
    rc = main(["segment", str(folder), "--text", "the red square", "--checkpoint",
               str(trained[0] / "checkpoints" / "last.pt"), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "masks.json").read_text())["sentences"][0]
    rel = [f["relevance"] for f in doc["frames"]]
    want = [list(s) for s in _runs([r > 0.5 for r in rel])]
    assert doc["spans"] == want and len(rel) == 5 and all(0 <= r <= 1 for r in rel)
    assert "predicted spans (frames where the sentence holds): " in printed
    assert (out / "overlay.mp4").stat().st_size > 0


def _runs(flags):
    from rvos.data.spans import runs

    return runs(flags)


def test_timeline_drawing():
    from rvos.infer.render import draw_timeline, tint

    frame = np.zeros((60, 40, 3), np.uint8)
    draw_timeline(frame, [[0.9, 0.1, 0.8, 0.7], None], index=1, n_frames=4)
    bar = frame[57]  # the bottom bar of sentence 0 (bar height 3, 2 px from the bottom)
    assert tuple(bar[2]) == tint(0) and tuple(bar[11]) == (128, 128, 128) and tuple(bar[25]) == tint(0)
    assert tuple(bar[15]) == (255, 255, 255)  # the tick of frame 1
    part = np.zeros((60, 40, 3), np.uint8)
    draw_timeline(part, [[0.9]], index=0, n_frames=4)  # frames 1-3 not decoded yet
    assert tuple(part[57, 35]) == (40, 40, 40)
