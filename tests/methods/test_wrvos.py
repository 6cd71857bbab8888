"""WRVOS training method (eq. 6-21) and the two-step baseline (Table XII): the combined loss pinned on a hand-made
input, switches, edge cases, forward/backward with both heads, and short end-to-end runs under every regime."""
from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import tiny_model_config, tiny_records, tiny_train_config  # noqa: E402

from rvos.data.batch import Batch  # noqa: E402
from rvos.data.regimes import apply_regime  # noqa: E402
from rvos.data.types import TargetKind  # noqa: E402
from rvos.errors import ConfigError  # noqa: E402
from rvos.methods.simrvos import SimRVOS, SimRVOSConfig  # noqa: E402
from rvos.methods.two_step import (_sentence_for, box_rect, pseudo_mask_quality, pseudo_mask_records,  # noqa: E402
                                   train_two_step)
from rvos.methods.wrvos import WRVOS, WRVOSConfig  # noqa: E402
from rvos.models import ModelConfig, build_model  # noqa: E402
from rvos.models.output import RVOSOutput  # noqa: E402
from rvos.train.config import MethodConfig, load_config  # noqa: E402
from rvos.train.loop import Trainer  # noqa: E402
from rvos.train.method import build_method  # noqa: E402

M, BX, NO = int(TargetKind.MASK), int(TargetKind.BOX), int(TargetKind.NONE)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster, and two threads collapse when the CPU is shared (measured 7 s
    vs 67 s for this file next to another training process)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
ALL = {"dice", "focal", "mil", "lgcfs_dice", "lgcfs_focal", "lgcfs_mil", "blcl_lv", "blcl_cc_fg", "blcl_cc_bg"}


# ---- a hand-made input: mock model output, B=1, T=2 frames of 2x2 -------------------------------------------------
class MockModel(nn.Module):
    """Filters are one scalar per channel: apply_filters = sum_c feature_c * filter_c."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(head="single")
        self.blcl = nn.Identity()  # "has a BLCL branch"

    def apply_filters(self, feats, filters, boxes=None):  # [N, C, h, w] x [N, Q, C] -> [N, Q, h, w]
        return (feats[:, None] * filters[..., None, None]).sum(2)


def hand_input():
    """Frame 0: MASK [[1,0],[0,0]]; frame 1: BOX over the left column. Features (C=1) and filters chosen so the
    own masks are M0 = [[2,0],[0,-2]], M1 = [[3,-.5],[-3,-.5]] and the cross masks M^{0<-1} = M0 / 2,
    M^{1<-0} = 2 M1."""
    f0 = torch.tensor([[2.0, 0.0], [0.0, -2.0]])
    f1 = torch.tensor([[6.0, -1.0], [-6.0, -1.0]])
    feats = torch.stack([f0, f1])[None, :, None]  # [1, 2, 1, 2, 2]
    filters = torch.tensor([1.0, 0.5]).reshape(1, 2, 1, 1)  # [B, T, Q, P]
    logits = torch.stack([f0 * 1.0, f1 * 0.5])[None, :, None]  # [B, T, Q, h, w]: each frame's own filter
    H = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.5], [0.5, -1.0]]])  # [D=2, h, w] frame 0
    H = torch.stack([H, -H])[None]  # [1, T, 2, 2, 2]
    out = RVOSOutput(mask_logits=logits, scores=torch.zeros(1, 2, 1), filters=filters, mask_features=feats,
                     sentence=torch.tensor([[1.0, -1.0]]), extras={"blcl_h": H})
    batch = Batch(frames=torch.zeros(1, 2, 3, 2, 2), target_kind=torch.tensor([[M, BX]]),
                  masks=torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]]),
                  boxes=torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, 1.0]]]),
                  present=torch.tensor([[True, True]]), valid=torch.ones(1, 2, dtype=torch.bool),
                  in_span=torch.ones(1, 2, dtype=torch.bool), positive=torch.tensor([True]), text=["x"],
                  video_ids=["v"], exp_ids=["0"], frame_index=torch.tensor([[0, 1]]))
    return out, batch


def sig(x):
    return 1 / (1 + math.exp(-x))


def dice(p, t):  # flat lists of probabilities and targets, +1 smoothing
    return 1 - (2 * sum(a * b for a, b in zip(p, t)) + 1) / (sum(p) + sum(t) + 1)


def focal(x, t, alpha=0.25):
    out = []
    for xi, ti in zip(x, t):
        p = sig(xi)
        ce = -math.log(p) if ti else -math.log(1 - p)
        pt = p if ti else 1 - p
        out.append((alpha if ti else 1 - alpha) * (1 - pt) ** 2 * ce)
    return sum(out) / len(out)


def mil(grid, box):  # 2x2 logits, 2x2 box mask: dice of the row maxima + dice of the column maxima
    p = [[sig(v) for v in row] for row in grid]
    rows = [max(r) for r in p], [max(r) for r in box]
    cols = [max(p[0][j], p[1][j]) for j in range(2)], [max(box[0][j], box[1][j]) for j in range(2)]
    return dice(*rows) + dice(*cols)


def contrast(query, keys, labels):  # eq. 14, averaged over the keys
    return sum(-math.log(sig(sum(q * k for q, k in zip(query, key)))) if lab else
               -math.log(1 - sig(sum(q * k for q, k in zip(query, key)))) for key, lab in zip(keys, labels)) / len(keys)


def expected_parts(pseudo: bool) -> dict:
    m0, m1 = [2, 0, 0, -2], [3, -0.5, -3, -0.5]
    g0, box1 = [1, 0, 0, 0], [[1, 0], [1, 0]]
    cross0, cross1 = [v / 2 for v in m0], [2 * v for v in m1]
    e = {"dice": dice([sig(v) for v in m0], g0), "focal": focal(m0, g0),
         "mil": mil([m1[:2], m1[2:]], box1),
         "lgcfs_dice": dice([sig(v) for v in cross0], g0), "lgcfs_focal": focal(cross0, g0),
         "lgcfs_mil": mil([cross1[:2], cross1[2:]], box1)}
    h0 = [(1.0, -1.0), (0.0, 0.5), (0.0, 0.5), (1.0, -1.0)]  # cells (row-major) of H frame 0: (d0, d1)
    h1 = [(-a, -b) for a, b in h0]
    # frame 0 (mask): fg cell 0, bg cells 1-3; frame 1 (box over the left column): right column background;
    # with pseudo masks sigmoid(3) > 0.9 makes cell 0 foreground and sigmoid(-3) < 0.1 makes cell 2 background
    fg = [h0[0]] + ([h1[0]] if pseudo else [])
    bg = h0[1:] + [h1[1], h1[3]] + ([h1[2]] if pseudo else [])
    keys, labels = fg + bg, [1] * len(fg) + [0] * len(bg)
    mean = lambda cells: [sum(c[d] for c in cells) / len(cells) for d in range(2)]  # noqa: E731
    e["blcl_lv"] = contrast([1.0, -1.0], keys, labels)
    e["blcl_cc_fg"] = contrast(mean(fg), keys, labels)
    e["blcl_cc_bg"] = contrast(mean(bg), keys, [1 - v for v in labels])
    return e


W = {"dice": 5, "focal": 2, "mil": 1, "lgcfs_dice": 5, "lgcfs_focal": 2, "lgcfs_mil": 1, "blcl_lv": 1,
     "blcl_cc_fg": 1, "blcl_cc_bg": 1}


@pytest.mark.parametrize("pseudo", [False, True])
def test_combined_loss_on_hand_made_input(pseudo):
    method = WRVOS(MockModel(), WRVOSConfig())
    method.set_epoch(1 if pseudo else 0)  # pseudo masks from epoch 1 (the default)
    assert method.pseudo_active is pseudo
    out, batch = hand_input()
    parts = method.combine(method.losses(out, batch))
    exp = expected_parts(pseudo)
    assert set(parts) == ALL | {"loss"}
    for k, v in exp.items():
        assert parts[k].item() == pytest.approx(v, rel=1e-5), k
    assert parts["loss"].item() == pytest.approx(sum(W[k] * exp[k] for k in W), rel=1e-5)
    # one value written out: the MIL of frame 1's row maxima sigmoid(3), sigmoid(-3)... both rows cross the box
    s3, s5 = sig(3), sig(-0.5)
    assert exp["mil"] == pytest.approx((1 - (2 * (s3 + s5) + 1) / (s3 + s5 + 3)) + (1 - (2 * s3 + 1) / (s3 + s5 + 2)))


def test_pseudo_masks_switch_on_by_epoch_or_step_and_flag():
    method = WRVOS(MockModel(), WRVOSConfig(pseudo_from_epoch=2))
    method.set_epoch(1)
    assert not method.pseudo_active
    method.set_epoch(2)
    assert method.pseudo_active
    off = WRVOS(MockModel(), WRVOSConfig(pseudo=False))
    off.set_epoch(5)
    assert not off.pseudo_active
    by_step = WRVOS(MockModel(), WRVOSConfig(pseudo_from_step=2))
    by_step.set_epoch(9)
    assert not by_step.pseudo_active
    by_step.steps_seen += 2
    assert by_step.pseudo_active and "steps_seen" in by_step.state_dict()


def test_mean_reduction_and_sum_reduction():
    out, batch = hand_input()
    mean = WRVOS(MockModel(), WRVOSConfig(seg_reduction="mean")).losses(out, batch)
    total = WRVOS(MockModel(), WRVOSConfig()).losses(out, batch)
    assert mean["dice"].item() == pytest.approx(total["dice"].item())  # one mask frame: sum == mean
    # two clips: sum per clip then mean over clips vs mean over frames
    b2 = replace(batch, target_kind=torch.tensor([[M, M]]), masks=batch.masks[:, [0, 0]])
    s = WRVOS(MockModel(), WRVOSConfig(lgcfs=False, blcl=False)).losses(out, b2)["dice"].item()
    m = WRVOS(MockModel(), WRVOSConfig(lgcfs=False, blcl=False, seg_reduction="mean")).losses(out, b2)["dice"].item()
    assert s == pytest.approx(2 * m)


# ---- the real (tiny) model ------------------------------------------------------------------------------------------
def make_batch(kinds=((M, BX, NO), (M, BX, BX)), H=32, W=48, boxes=None, positive=(True, True), empty=False) -> Batch:
    B, T = len(kinds), len(kinds[0])
    masks = torch.zeros(B, T, H, W)
    if not empty:
        masks[..., 8:24, 12:36] = 1
    box = torch.tensor([12 / W, 8 / H, 36 / W, 24 / H]).repeat(B, T, 1) if boxes is None else boxes
    pos = torch.tensor(positive[:B])
    return Batch(frames=torch.rand(B, T, 3, H, W), target_kind=torch.tensor(kinds), masks=masks, boxes=box,
                 present=(torch.tensor(kinds) != NO) & pos[:, None] & (not empty),
                 valid=torch.ones(B, T, dtype=torch.bool), in_span=torch.ones(B, T, dtype=torch.bool), positive=pos,
                 text=["the camel on the left", "a red car"][:B], video_ids=["a", "b"][:B], exp_ids=["0", "0"][:B],
                 frame_index=torch.arange(T).repeat(B, 1))


def tiny(head="single", blcl=True, **kw):
    return build_model(ModelConfig(vision="tiny", text="tiny", dim=32, head=head, vision_frozen=False, blcl=blcl,
                                   num_queries=3, **kw))


@pytest.mark.parametrize("head", ["single", "multi"])
def test_forward_backward_every_parameter_gets_a_gradient(head):
    method = WRVOS(tiny(head), WRVOSConfig(pseudo_from_step=0))
    method.train()
    parts = method(make_batch())
    extra = {"score", "box_l1", "giou"} if head == "multi" else set()
    assert set(parts) == ALL | extra | {"loss"}
    w = {**W, **({"score": 2, "box_l1": 5, "giou": 2} if head == "multi" else {})}
    assert parts["loss"].item() == pytest.approx(sum(w[k] * parts[k].item() for k in w), rel=1e-5)
    parts["loss"].backward()
    for name, p in method.model.named_parameters():
        if head == "single" and name.startswith("head.score"):
            continue  # the single head's score is only trained with a "score" weight (SimRVOS)
        assert (p.grad is not None) == p.requires_grad, name
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    assert int(method.steps_seen) == 1


@pytest.mark.parametrize("cfg, absent", [
    (dict(lgcfs=False), {"lgcfs_dice", "lgcfs_focal", "lgcfs_mil"}),
    (dict(blcl=False), {"blcl_lv", "blcl_cc_fg", "blcl_cc_bg"}),
    (dict(blcl_lv=False), {"blcl_lv"}),
    (dict(blcl_cc=False), {"blcl_cc_fg", "blcl_cc_bg"}),
    (dict(lgcfs_variant="first_frame"), {"lgcfs_mil"}),
    (dict(lgcfs_variant="first_frame_others_avg"), set()),
    (dict(weights={"dice": 5, "focal": 2, "mil": 0, "lgcfs_dice": 5, "lgcfs_focal": 2, "blcl_lv": 1}),
     {"mil", "lgcfs_mil", "blcl_cc_fg", "blcl_cc_bg"}),
])
def test_parts_present_or_absent_per_switch(cfg, absent):
    method = WRVOS(tiny(), WRVOSConfig(**cfg))
    parts = method(make_batch())
    assert set(parts) == (ALL - absent) | {"loss"}
    assert parts["loss"].item() == pytest.approx(sum(method.weights.get(k, 0) * v.item() for k, v in parts.items()
                                                     if k != "loss"), rel=1e-5)


def test_variant_avg_divides_box_terms_by_box_frames():
    torch.manual_seed(0)
    model = tiny()
    batch = make_batch(kinds=((M, BX, BX),))
    full = WRVOS(model, WRVOSConfig(lgcfs_variant="full"))(batch)["lgcfs_mil"].item()
    avg = WRVOS(model, WRVOSConfig(lgcfs_variant="first_frame_others_avg"))(batch)["lgcfs_mil"].item()
    assert avg == pytest.approx(full / 2, rel=1e-5)


def test_without_lgcfs_blcl_and_with_mean_it_is_simrvos_on_full_masks():
    model = tiny(blcl=False).eval()
    batch = make_batch(kinds=((M, M, M), (M, M, NO)))
    w = WRVOS(model, WRVOSConfig(lgcfs=False, blcl=False, seg_reduction="mean"))(batch)
    s = SimRVOS(model, SimRVOSConfig())(batch)
    assert w["loss"].item() == pytest.approx(s["loss"].item(), rel=1e-6) and w["mil"].item() == 0


def test_empty_masks_negatives_border_and_one_pixel_boxes():
    model = tiny("multi")
    H, W_ = 32, 48
    boxes = torch.tensor([[[0.9, 0.8, 1.3, 1.2], [-0.2, -0.1, 0.05, 0.1], [10 / W_, 8 / H, 11 / W_, 9 / H]],
                          [[0.0, 0.0, 1.0, 1.0], [1.1, 1.1, 1.4, 1.3], [0.5, 0.5, 0.5, 0.5]]])
    for batch in (make_batch(kinds=((M, BX, BX), (BX, BX, BX)), boxes=boxes),
                  make_batch(kinds=((M, BX, BX), (M, M, BX)), empty=True),
                  make_batch(positive=(False, True))):
        method = WRVOS(model, WRVOSConfig(pseudo_from_step=0))
        method.train()
        parts = method(batch)
        for k, v in parts.items():
            assert torch.isfinite(v), k
        parts["loss"].backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        model.zero_grad()


def test_config_errors():
    with pytest.raises(ConfigError, match="model.blcl=true"):
        WRVOS(tiny(blcl=False), WRVOSConfig())
    WRVOS(tiny(blcl=False), WRVOSConfig(blcl=False))  # fine without BLCL terms
    with pytest.raises(ConfigError, match="unknown parts"):
        WRVOS(tiny(), WRVOSConfig(weights={"dice": 5, "contrast": 1}))
    with pytest.raises(ConfigError, match="lgcfs_variant"):
        WRVOS(tiny(), WRVOSConfig(lgcfs_variant="others"))
    with pytest.raises(ConfigError, match="d_th"):
        WRVOS(tiny(), WRVOSConfig(d_th=1.0))
    with pytest.raises(ConfigError, match="seg_reduction"):
        WRVOS(tiny(), WRVOSConfig(seg_reduction="max"))
    with pytest.raises(ConfigError, match="box"):
        WRVOS(tiny(), WRVOSConfig(weights={"dice": 5, "giou": 2}))


# ---- end to end ---------------------------------------------------------------------------------------------------
def wrvos_config(steps=2, **params):
    cfg = tiny_train_config(steps=steps, checkpoint_every=0)
    return replace(cfg, model=replace(tiny_model_config(), blcl=True),
                   method=MethodConfig("wrvos", {"upsample_logits": False, "pseudo_from_step": 1, **params}))


@pytest.mark.parametrize("regime", ["full", "mask_box", "box", "mask", "mask_box_random"])
def test_trainer_runs_under_every_regime(regime, tmp_path):
    records = apply_regime(tiny_records(k=2, n=5), regime)
    trainer = Trainer(wrvos_config(), tmp_path, records=records, hooks=[])
    last = trainer.fit()
    assert trainer.step == 2 and math.isfinite(last["loss"])
    assert trainer.method.pseudo_active and {"mil", "lgcfs_dice", "blcl_lv"} <= set(last)


def test_pseudo_mask_records_stay_in_their_boxes():
    records = apply_regime(tiny_records(k=1, n=4), "mask_box")
    model = build_model(tiny_model_config())
    pseudo = pseudo_mask_records(model, records)
    rec, src = pseudo[0], records[0]
    for key, tr in rec.tracks.items():
        for t, s in zip(tr.targets, src.tracks[key].targets):
            assert t.kind == TargetKind.MASK
            if s.kind == TargetKind.MASK:
                assert t.mask is s.mask  # the annotated mask is kept as is
            else:
                m = t.load_mask()
                rect = box_rect(s.box, 32, 48)
                assert m.any() and not (m & ~rect).any()  # inside the box, never empty (the box as fallback)
    q = pseudo_mask_quality(pseudo, apply_regime(tiny_records(k=1, n=4), "full"))
    assert q["pseudo_masks"] == 6 and 0.0 <= q["mean_iou"] <= 1.0  # 2 objects x 3 box frames


def test_box_rect_clips_and_keeps_one_pixel():
    r = box_rect((46.5, 30.2, 60.0, 40.0), 32, 48)
    assert r.sum() == 2 * 2 and r[30:32, 46:48].all()
    assert box_rect((3, 5, 4, 6), 32, 48).sum() == 1 and box_rect((3, 5, 4, 6), 32, 48)[5, 3]


def test_two_step_end_to_end(tmp_path):
    records = apply_regime(tiny_records(k=2, n=4), "mask_box")
    res = train_two_step(wrvos_config(), tmp_path, records=records, hooks=lambda: [])
    assert math.isfinite(res.step1_parts["loss"]) and math.isfinite(res.step2_parts["loss"])
    assert {"mil"} <= set(res.step1_parts) and not any(k.startswith(("lgcfs", "blcl")) for k in res.step1_parts)
    assert set(res.step2_parts) == {"loss", "dice", "focal"}
    kinds = {t.kind for r in res.pseudo_records for tr in r.tracks.values() for t in tr.targets}
    assert kinds == {TargetKind.MASK} and res.model is not res.step1_model
    assert (tmp_path / "step1" / "config.yaml").is_file() and (tmp_path / "step2" / "config.yaml").is_file()


def test_pseudo_labels_prefer_a_sentence_about_the_object_alone():
    rec = tiny_records(k=1)[0]  # expressions: square [1], bar [2], both [1, 2], a negative
    assert _sentence_for(rec, 1).exp_id == "0" and _sentence_for(rec, 2).exp_id == "1"
    only_both = replace(rec, expressions=[e for e in rec.expressions if e.exp_id in ("2", "3")])
    assert _sentence_for(only_both, 2).exp_id == "2" and _sentence_for(only_both, 7) is None


def test_packaged_config_builds_the_method():
    cfg = load_config("wrvos_synth", ["model.vision=tiny", "model.text=tiny", "model.vision_pretrained=false",
                                      "model.dim=16", "model.num_heads=2"])
    assert cfg.data.regime == "mask_box" and cfg.model.blcl and cfg.method.name == "wrvos"
    method = build_method(cfg.method.name, build_model(cfg.model), cfg.method.params)
    assert isinstance(method, WRVOS) and method.cfg.d_th == 0.9 and method.cfg.pseudo_from_epoch == 1
    assert set(method.weights) == ALL


def test_tables_benchmark_smoke_writes_results_and_resumes(tmp_path):
    import json
    import os
    import subprocess

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "wrvos_tables.py"
    cmd = [sys.executable, str(script), "--smoke", "--tables", "XII", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert set(runs) == {"simrvos_mask_box|seed0|steps3", "two_step|seed0|steps3", "ours|seed0|steps3"}
    for r in runs.values():
        assert 0 <= r["J&F"] <= 1 and r["annotation_s"] > 0 and r["regime"] == "mask_box"
    assert 0 <= runs["two_step|seed0|steps3"]["pseudo_iou"] <= 1
    assert "| SimRVOS+Two-Step | mask_box |" in first.stdout and (tmp_path / "wrvos_tradeoff.png").is_file()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)  # resumes: nothing left to train
    assert again.returncode == 0 and "steps3: J&F" not in again.stdout and "| SimRVOS+Two-Step |" in again.stdout


def test_two_step_builds_one_feature_cache_for_both_steps(tmp_path, monkeypatch):
    import rvos.train.feature_cache as fc

    built = []
    real = fc.build_feature_cache
    monkeypatch.setattr(fc, "build_feature_cache", lambda *a, **k: built.append(1) or real(*a, **k))
    cfg = wrvos_config()
    cfg = replace(cfg, model=replace(cfg.model, vision_frozen=True), loop=replace(cfg.loop, feature_cache="memory"))
    res = train_two_step(cfg, tmp_path, records=apply_regime(tiny_records(k=1, n=4), "mask_box"), hooks=lambda: [])
    assert built == [1] and math.isfinite(res.step2_parts["loss"])
