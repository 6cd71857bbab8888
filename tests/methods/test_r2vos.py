"""R2-VOS method (R2-VOS eq. 7-12): the loss by hand on a mocked output, ablation switches, forward/backward with
both heads, gated inference through `rvos segment`, `rvos eval --protocol r2 --checkpoint` and a Trainer run with
sampled negatives, all on tiny models."""
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

from fixtures_layouts import write_ytvos  # noqa: E402
from rvos.cli import main  # noqa: E402
from rvos.data.batch import Batch  # noqa: E402
from rvos.data.types import Expression, TargetKind  # noqa: E402
from rvos.errors import ConfigError  # noqa: E402
from rvos.infer.command import gate_for_config  # noqa: E402
from rvos.methods.r2vos import DEFAULT_WEIGHTS, R2VOS, R2VOSConfig  # noqa: E402
from rvos.models import ModelConfig, build_model  # noqa: E402
from rvos.models.output import RVOSOutput  # noqa: E402
from rvos.train.checkpoint import atomic_torch_save, load_checkpoint  # noqa: E402
from rvos.train.config import from_dict, TrainConfig  # noqa: E402
from rvos.train.loop import Trainer  # noqa: E402
from train_helpers import square_record, tiny_model_config  # noqa: E402

M = int(TargetKind.MASK)


def tiny(head="single", r2=True, **kw):
    return build_model(ModelConfig(vision="tiny", text="tiny", dim=16, num_heads=2, fpn_dims=(16, 16, 8), mask_dim=8,
                                   dyn_hidden=8, head=head, num_queries=3, vision_frozen=False, text_frozen=False,
                                   r2=r2, **kw))


def batch_of(positive, T=1, H=2, W=2, frames=None) -> Batch:
    B = len(positive)
    pos = torch.tensor(positive)
    masks = torch.zeros(B, T, H, W)
    masks[pos, :, 0, 0] = 1  # positives: the top-left pixel; negatives: empty
    return Batch(frames=frames if frames is not None else torch.rand(B, T, 3, H, W),
                 target_kind=torch.full((B, T), M), masks=masks, boxes=torch.tensor([0.0, 0.0, 0.5, 0.5]).repeat(B, T, 1),
                 present=pos[:, None].repeat(1, T), valid=torch.ones(B, T, dtype=torch.bool),
                 in_span=torch.ones(B, T, dtype=torch.bool), positive=pos,
                 text=[f"sentence {i}" for i in range(B)], video_ids=[f"v{i}" for i in range(B)],
                 exp_ids=["0"] * B, frame_index=torch.zeros(B, T, dtype=torch.long))


def mocked_output() -> RVOSOutput:
    """B = 4 pairs (3 positives, 1 negative), T = 1, one query, 2x2 logits; e/e' in 2-D."""
    logits = torch.zeros(4, 1, 1, 2, 2)
    logits[3] = 5.0  # the negative: would change dice and focal if it counted
    e = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [50.0, -7.0]])
    e_rec = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-9.0, 2.0]])
    return RVOSOutput(mask_logits=logits, scores=torch.zeros(4, 1, 1), filters=torch.zeros(4, 1, 1, 1),
                      mask_features=torch.zeros(4, 1, 1, 2, 2), sentence=e,
                      presence=torch.tensor([2.0, 0.0, -1.0, 1.0]), extras={"sentence_rec": e_rec})


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5


def test_total_loss_by_hand():
    method = R2VOS(tiny(), R2VOSConfig(upsample_logits=False))
    parts = method.combine(method.losses(mocked_output(), batch_of([True, True, True, False])))
    # segmentation on the 3 positives: logits 0 (p = 1/2), target 1 of 4 pixels
    dice = 1 - (2 * 0.5 + 1) / (4 * 0.5 + 1 + 1)  # 0.5
    focal = (0.25 * 0.25 * math.log(2) + 3 * 0.75 * 0.25 * math.log(2)) / 4  # alpha 0.25, gamma 2
    # cycle on the positives: E = (0,0) (3,0) (0,4) [distances 3 4 5, mean 4]; E' = (0,0) (1,0) (0,1)
    mu = (2 + math.sqrt(2)) / 3
    dist = sum(huber(b / mu - a / 4) for a, b in ((3, 1), (4, 1), (5, math.sqrt(2)))) / 3
    # angles at each vertex: E 0, 3/5, 4/5; E' 0, 1/sqrt2, 1/sqrt2 (each twice, i and k swapped)
    angle = sum(huber(b - a) for a, b in ((0, 0), (0.6, 1 / math.sqrt(2)), (0.8, 1 / math.sqrt(2)))) / 3
    # consensus BCE on all 4: labels 1 1 1 0, logits 2 0 -1 1
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus
    cons = (sp(-2) + sp(0) + sp(1) + sp(1)) / 4
    assert parts["dice"].item() == pytest.approx(dice, rel=1e-6)
    assert parts["focal"].item() == pytest.approx(focal, rel=1e-6)
    assert parts["cycle_dist"].item() == pytest.approx(dist, rel=1e-5)
    assert parts["cycle_angle"].item() == pytest.approx(angle, rel=1e-5)
    assert parts["consensus"].item() == pytest.approx(cons, rel=1e-6)
    assert parts["cycle_skipped"].item() == 0
    total = 5 * dice + 2 * focal + 1 * dist + 2 * angle + 2 * cons
    assert parts["loss"].item() == pytest.approx(total, rel=1e-5)
    assert DEFAULT_WEIGHTS["single"] == {"dice": 5.0, "focal": 2.0, "cycle_dist": 1.0, "cycle_angle": 2.0, "consensus": 2.0}


def test_ablation_switches_and_skipped_relations():
    out, batch = mocked_output(), batch_of([True, True, True, False])
    for cycle, kept in (("distance", {"cycle_dist"}), ("angle", {"cycle_angle"}), ("none", set())):
        m = R2VOS(tiny(), R2VOSConfig(upsample_logits=False, cycle=cycle))
        parts = m.combine(m.losses(out, batch))
        assert {k for k in parts if k.startswith("cycle_") and k != "cycle_skipped"} == kept
        assert ("cycle_skipped" in parts) == bool(kept)
        assert set(m.weights) == {"dice", "focal", "consensus"} | kept
    m = R2VOS(tiny(), R2VOSConfig(upsample_logits=False, consensus=False))
    parts = m.combine(m.losses(out, batch))
    assert "consensus" not in parts and "consensus" not in m.weights
    full = R2VOS(tiny(), R2VOSConfig(upsample_logits=False))
    with_cons = full.combine(full.losses(out, batch))
    assert parts["loss"].item() == pytest.approx(with_cons["loss"].item() - 2 * with_cons["consensus"].item(), rel=1e-6)
    # two positives: the angle relation is undefined -> left out of the parts and the total, flagged
    two = full.combine(full.losses(out, batch_of([True, True, False, False])))
    assert "cycle_angle" not in two and "cycle_dist" in two and two["cycle_skipped"].item() == 1
    assert two["loss"].item() == pytest.approx(sum(full.weights[k] * two[k].item() for k in ("dice", "focal", "cycle_dist", "consensus")), rel=1e-6)
    # an all-negative batch: segmentation terms are 0, the consensus term still trains the presence head
    neg = full.combine(full.losses(out, batch_of([False] * 4)))
    assert neg["dice"].item() == 0 and "cycle_dist" not in neg and neg["consensus"].item() > 0


def test_config_errors():
    with pytest.raises(ConfigError, match="model.r2=true"):
        R2VOS(tiny(r2=False))
    with pytest.raises(ConfigError, match="cycle"):
        R2VOS(tiny(), R2VOSConfig(cycle="pointwise"))
    with pytest.raises(ConfigError, match="unknown parts"):
        R2VOS(tiny(), R2VOSConfig(weights={"dice": 5, "mil": 1}))
    with pytest.raises(ConfigError, match="box"):
        R2VOS(tiny(), R2VOSConfig(weights={"dice": 5, "giou": 2}))


@pytest.mark.parametrize("head,reconstruct_from", [("single", "early"), ("multi", "early"), ("single", "visual"),
                                                   ("single", "visual_attn")])
def test_forward_backward(head, reconstruct_from):
    method = R2VOS(tiny(head, r2_reconstruct_from=reconstruct_from))
    batch = batch_of([True, False, True, True], T=2, H=32, W=48)
    parts = method(batch)
    expect = {"loss", "dice", "focal", "cycle_dist", "cycle_angle", "cycle_skipped", "consensus"}
    expect |= {"score", "box_l1", "giou"} if head == "multi" else set()
    assert set(parts) == expect and torch.isfinite(parts["loss"])
    assert parts["loss"].item() == pytest.approx(sum(w * parts[k].item() for k, w in method.weights.items()), rel=1e-5)
    parts["loss"].backward()
    unused = {"head.score.weight", "head.score.bias"} if head == "single" else set()  # SimRVOS single head: no score term
    for name, p in method.model.named_parameters():
        if p.requires_grad and name not in unused:
            assert p.grad is not None, name
    assert method.model.r2.consensus.fc1.weight.grad.abs().sum() > 0
    assert method.model.r2.reconstruction is not None and any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.r2.reconstruction.parameters())
    if reconstruct_from != "early":  # the gate learns from the losses through e'
        assert method.model.r2.rec_gate.conv.weight.grad.abs().sum() > 0


def test_gate_for_config():
    cfg = from_dict(TrainConfig, {"model": {"r2": True}, "method": {"name": "r2vos", "params": {}}})
    assert gate_for_config(cfg) is None
    cfg.method.params = {"consensus": False}
    assert gate_for_config(cfg) is False
    cfg.method.params = {"weights": {"dice": 5, "focal": 2, "consensus": 0}}
    assert gate_for_config(cfg) is False
    cfg.model.r2 = False
    assert gate_for_config(cfg) is None


# ---- end to end: Trainer with negatives, gated `rvos segment`, `rvos eval --protocol r2 --checkpoint` ----------

def distinct_records():
    """Three videos whose sentences differ (the helpers' records share texts, so none would be unrelated)."""
    out = []
    for i, (a, b) in enumerate((("red square", "blue bar"), ("left square", "flat bar"), ("bright square", "dark bar"))):
        r = square_record(f"v{i}", n=5, seed=i)
        out.append(replace(r, expressions=[Expression("0", f"the {a}", [1]), Expression("1", f"the {b}", [2]),
                                           Expression("2", "a flying cat", [])]))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step r2vos run with sampled negatives; returns (run folder, trainer)."""
    model = tiny_model_config().to_dict() | {"r2": True}
    cfg = from_dict(TrainConfig, {
        "data": {"negative_ratio": 1.0, "negative_seed": 0, "clip": {"num_frames": 2, "size": [32, 48], "negatives": True}},
        "model": model, "method": {"name": "r2vos", "params": {"upsample_logits": False}},
        "optim": {"lr": 1e-3, "backbone_lr": 1e-3, "grad_clip": 1.0, "weight_decay": 0.0},
        "loop": {"steps": 3, "batch_size": 6, "checkpoint_every": 3, "log_every": 1, "progress": False, "plot": False}})
    out = tmp_path_factory.mktemp("r2run")
    trainer = Trainer(cfg, out, records=distinct_records())
    trainer.fit()
    return out, trainer


def test_trainer_with_negatives(trained):
    out, trainer = trained
    items = [trainer.dataset.records[r].expressions[e] for r, e in trainer.dataset.items]
    sampled = [e for e in items if e.exp_id.startswith("neg-")]
    assert len(sampled) == 6 and all(not e.positive for e in sampled)  # ratio 1: one per positive
    assert sum(e.positive for e in items) == 6 and len(items) == 6 + 3 + 6  # + the records' own negatives
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r["loss"]) and r["consensus"] > 0 for r in rows)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["config"]["method"]["name"] == "r2vos"


def forced(trained, tmp_path, bias: float) -> Path:
    """The trained checkpoint with the consensus head forced to A = bias (sigmoid ~ 0 or 1) for every pair."""
    ckpt = load_checkpoint(trained[0] / "checkpoints" / "last.pt")
    ckpt["model"]["r2.consensus.fc2.weight"].zero_()
    ckpt["model"]["r2.consensus.fc2.bias"].fill_(bias)
    path = tmp_path / f"forced{bias:+.0f}.pt"
    atomic_torch_save(ckpt, path)
    return path


def frame_folder(tmp_path) -> Path:
    folder = tmp_path / "video"
    folder.mkdir()
    rec = square_record("x", n=3, h=32, w=48)
    for i in range(3):
        Image.fromarray(rec.video.frame(i)).save(folder / f"{i:05d}.jpg")
    return folder


def test_segment_gates_an_absent_object(trained, tmp_path, capsys):
    video, out = frame_folder(tmp_path), tmp_path / "seg"
    rc = main(["segment", str(video), "--text", "the red square", "--checkpoint", str(forced(trained, tmp_path, -30.0)),
               "--out", str(out), "--no-video", "--threshold", "0.01"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "'the red square': object in 0/3 frames, not present (A: p=0.00; masks emptied)" in printed
    pngs = sorted((out / "png" / "the-red-square").glob("*.png"))
    assert len(pngs) == 3 and all(not np.asarray(Image.open(p)).any() for p in pngs)
    doc = json.loads((out / "masks.json").read_text())["sentences"][0]
    assert doc["present"] is False and doc["gated"] is True and doc["presence_score"] < 1e-6
    assert [f["area"] for f in doc["frames"]] == [0, 0, 0]
    # --no-gate keeps the masks (threshold 0.01: the tiny model's masks are not empty) and says so
    rc = main(["segment", str(video), "--text", "the red square", "--checkpoint", str(forced(trained, tmp_path, -30.0)),
               "--out", str(tmp_path / "nogate"), "--no-video", "--threshold", "0.01", "--no-gate"])
    printed = capsys.readouterr().out
    assert rc == 0 and "not present (A: p=0.00; masks kept (--no-gate))" in printed
    doc = json.loads((tmp_path / "nogate" / "masks.json").read_text())["sentences"][0]
    assert doc["present"] is False and doc["gated"] is False and sum(f["area"] for f in doc["frames"]) > 0


def test_segment_presence_threshold(trained, tmp_path, capsys):
    video, ckpt = frame_folder(tmp_path), forced(trained, tmp_path, 1.0)  # sigmoid(1) = 0.73
    for thr, present in ((0.5, True), (0.9, False)):
        out = tmp_path / f"seg{thr}"
        rc = main(["segment", str(video), "--text", "the red square", "--checkpoint", str(ckpt), "--out", str(out),
                   "--no-video", "--threshold", "0.01", "--presence-threshold", str(thr)])
        assert rc == 0
        doc = json.loads((out / "masks.json").read_text())["sentences"][0]
        assert doc["present"] is present and doc["gated"] is (not present)
        assert (sum(f["area"] for f in doc["frames"]) > 0) is present
    capsys.readouterr()


def test_eval_r2_checkpoint_end_to_end(trained, tmp_path, capsys):
    data = tmp_path / "data"
    write_ytvos(data, "train")  # vid_a: 2 positives + its own negative; vid_b: 1 positive
    base = ["eval", "--dataset", str(data), "--split", "train", "--protocol", "r2", "--workers", "1"]
    # absent everywhere: every mask gated -> no area anywhere -> R = 1, J = F = 0 on the positives' object frames
    absent = forced(trained, tmp_path, -30.0)
    assert main(base + ["--checkpoint", str(absent), "--out", str(tmp_path / "res")]) == 0
    s = json.loads((tmp_path / "res" / "results.json").read_text())["summary"]
    assert s["positives"] == 3 and s["negatives"] == 4  # 3 pairing negatives + vid_a's own "a flying cat"
    assert s["neg_area"] == 0 and s["pos_area"] == 0 and s["R"] == 1.0
    assert s["J&F&R"] == pytest.approx((s["J"] + s["F"] + 1.0) / 3)
    # present everywhere, threshold 0.01 (the tiny model's masks are then not empty): R from the areas; pairing only
    present = forced(trained, tmp_path, 30.0)
    pred = tmp_path / "pred"
    assert main(base + ["--checkpoint", str(present), "--threshold", "0.01", "--r2-negatives", "pairing", "--r2-seed", "3",
                        "--save-predictions", str(pred), "--out", str(tmp_path / "res2")]) == 0
    s2 = json.loads((tmp_path / "res2" / "results.json").read_text())["summary"]
    assert s2["negatives"] == 3 and s2["pos_area"] > 0
    assert s2["R"] == pytest.approx(1 - s2["neg_area"] / s2["pos_area"])
    negs = sorted(p.name for p in (pred / "vid_a").iterdir() if p.name.startswith("neg-"))
    assert negs == ["neg-vid_b-0"]
    # the saved folder re-scores to the same numbers; without a negative's folder: a clear error
    capsys.readouterr()
    assert main(["eval", str(pred)] + base[1:] + ["--r2-negatives", "pairing", "--r2-seed", "3",
                                                  "--out", str(tmp_path / "res3")]) == 0
    s3 = json.loads((tmp_path / "res3" / "results.json").read_text())["summary"]
    assert s3["R"] == pytest.approx(s2["R"]) and s3["J"] == pytest.approx(s2["J"])
    for p in (pred / "vid_a" / "neg-vid_b-0").iterdir():
        p.unlink()
    (pred / "vid_a" / "neg-vid_b-0").rmdir()
    assert main(["eval", str(pred)] + base[1:] + ["--r2-negatives", "pairing"]) != 0
    assert "lack 1 negative pairs" in capsys.readouterr().err
