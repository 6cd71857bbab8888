"""WSRVOS training (text supervision only): no spatial target reaches the method, the step's plan (forwards and
candidate sentences), the weight table and switches, warm-up of the fusion, and end-to-end runs: the Python
trainer on tiny records, and `rvos augment` (rules) + `rvos train` on a tiny synthetic benchmark."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import tiny_model_config, tiny_records, tiny_train_config  # noqa: E402

from rvos.cli import main  # noqa: E402
from rvos.data.batch import Batch  # noqa: E402
from rvos.data.clips import ClipConfig, ClipDataset, collate  # noqa: E402
from rvos.data.regimes import apply_regime  # noqa: E402
from rvos.data.types import TargetKind  # noqa: E402
from rvos.errors import ConfigError  # noqa: E402
from rvos.methods.wsrvos import DEFAULT_WEIGHTS, WSRVOS, WSRVOSConfig, join  # noqa: E402
from rvos.models import build_model  # noqa: E402
from rvos.train.config import MethodConfig  # noqa: E402
from rvos.train.loop import Trainer  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def model_config(**kw):
    return replace(tiny_model_config(), head="multi", num_queries=3, selection=True, expression_scorer=True, **kw)


def augmented(k=2):
    recs = tiny_records(k)
    for r in recs:
        r.expressions[0].augmented_positives[:] = ["the red box on the left", "the square shape on the left",
                                                   "the red square at the left"]
        r.expressions[0].hard_negatives[:] = ["the blue square on the left", "the red circle on the left"]
    return recs


def batch_of(records, regime="text", n=4, flip_prob=0.0, items=None, **clip):
    """Clips of the positive expressions; items (0, 3): each video's first sentence (the one with positives)."""
    ds = ClipDataset(apply_regime(records, regime), ClipConfig(num_frames=3, size=(32, 48), negatives=False,
                                                               flip_prob=flip_prob, **clip))
    return collate([ds[i] for i in (items if items is not None else range(min(n, len(ds))))])


SPATIAL = ("masks", "boxes", "target_kind", "present")


class NoSpatialBatch:
    """A Batch whose spatial fields cannot be read: any access raises."""

    def __init__(self, batch: Batch):
        self._batch = batch

    def __getattr__(self, name):
        if name in SPATIAL:
            raise AssertionError(f"the method read batch.{name}")
        return getattr(self._batch, name)


# ---- the no-spatial-target guarantee -----------------------------------------------------------------------------
def test_text_regime_leaves_no_mask_or_box_in_records_or_batches():
    text = apply_regime(augmented(), "text")
    for rec in text:
        for tr in rec.tracks.values():
            assert all(t.kind == TargetKind.NONE and t.mask is None and t.box is None for t in tr.targets)
    b = batch_of(augmented())
    assert int(b.target_kind.abs().sum()) == 0 and float(b.masks.abs().sum()) == 0
    assert float(b.boxes.abs().sum()) == 0 and not b.present.any()
    assert b.positives[0] == ["the red box on the left", "the square shape on the left", "the red square at the left"]
    assert b.negatives[0] == ["the blue square on the left", "the red circle on the left"]
    assert b.others[0] == ["the blue bar", "a flying cat"]  # the other object's sentence and the absent one
    assert "both shapes" not in b.others[0]  # it refers to the square too


def test_method_refuses_batches_with_spatial_targets():
    method = WSRVOS(build_model(model_config()))
    for regime in ("full", "mask_box", "box"):
        with pytest.raises(ConfigError, match="text alone.*data.regime=text"):
            method(batch_of(augmented(), regime))
    b = batch_of(augmented())
    for name, value in (("masks", b.masks + 1), ("boxes", b.boxes + 0.5), ("present", ~b.present)):
        with pytest.raises(ConfigError, match="text alone"):
            method(replace(b, **{name: value}))


@pytest.mark.parametrize("options", [{}, {"token_classification": True, "fusion_source": "tokens"}])
def test_the_losses_read_no_spatial_field(options):
    torch.manual_seed(0)
    method = WSRVOS(build_model(model_config()), WSRVOSConfig(fusion_from_step=0, **options))
    parts = method.losses(NoSpatialBatch(batch_of(augmented())))
    assert {"cls", "fusion_dice", "fusion_focal", "ranking"} <= set(parts)
    assert ("cls_token" in parts) == bool(options)
    assert all(math.isfinite(float(v.detach())) for v in parts.values())


def test_flipped_clips_mirror_every_sentence():
    b = batch_of(augmented(1), n=1, flip_prob=1.0)
    assert b.text[0] == "the red square on the right"
    assert b.positives[0][0] == "the red box on the right" and b.negatives[0][0] == "the blue square on the right"


# ---- the plan of a step ------------------------------------------------------------------------------------------
def test_plan_forwards_and_candidates():
    model = build_model(model_config())
    b = batch_of(augmented(), items=(0, 3))
    method = WSRVOS(model, WSRVOSConfig(num_positives=2, num_negatives=1, num_others=5))
    clips, texts, cands, local = method.plan(b)
    assert clips == [0, 0, 0, 1, 1, 1] and texts[0] == b.text[0] and set(texts[1:3]) <= set(b.positives[0])
    joined = WSRVOS(model, WSRVOSConfig(num_positives=2, concat_original=True)).plan(b)[1]
    assert all(t.startswith("the red square on the left. ") for t in joined[1:3])  # positives joined to the original
    assert join("the red square.", "a box") == "the red square. a box"
    assert local[0] == [False, False, True, True]  # the other objects' expressions are true of the video
    for k in range(3):  # own sentence first, then one hard negative and the other objects' sentences
        assert cands[k][0] == texts[k] and len(cands[k]) == 1 + 1 + 2
        assert cands[k][1] in b.negatives[0] and cands[k][2:] == b.others[0]
    clips, texts, cands, _ = WSRVOS(model, WSRVOSConfig(augmentation=False)).plan(b)
    assert clips == [0, 1] and cands[0] == [b.text[0], *b.others[0]]  # w/o augmentation: no positive, no negative
    b2 = replace(b, video_ids=["v0", "v1"], text=["the red square on the left", "a green dog"])
    _, _, cands, local = WSRVOS(model, WSRVOSConfig(augmentation=False, batch_negatives=True)).plan(b2)
    assert cands[0][1] == "a green dog" and local[0][1] is False  # another video's sentence: absent from this one
    m3 = WSRVOS(model, WSRVOSConfig(num_positives=1))
    assert m3.plan(b)[1][:2] == m3.plan(b)[1][:2]  # the draw is seeded (same step, same draw)


# ---- weights, switches, warm-up ----------------------------------------------------------------------------------
def test_weights_switches_and_errors():
    model = build_model(model_config())
    assert WSRVOS(model).weights == {k: w for k, w in DEFAULT_WEIGHTS.items() if k != "cls_token"}  # option off
    assert WSRVOS(model, WSRVOSConfig(token_classification=True)).weights == DEFAULT_WEIGHTS
    with pytest.raises(ConfigError, match="fusion_source"):
        WSRVOS(model, WSRVOSConfig(fusion_source="boxes"))
    assert set(WSRVOS(model, WSRVOSConfig(fusion=False, ranking=False)).weights) == {"cls"}
    assert "cls" not in WSRVOS(model, WSRVOSConfig(classification=False)).weights
    with pytest.raises(ConfigError, match="unknown parts"):
        WSRVOS(model, WSRVOSConfig(weights={"dice": 1.0}))
    with pytest.raises(ConfigError, match="switched off"):
        WSRVOS(model, WSRVOSConfig(classification=False, fusion=False, ranking=False))
    with pytest.raises(ConfigError, match="expression_scorer"):
        WSRVOS(build_model(replace(model_config(), expression_scorer=False)))
    with pytest.raises(ConfigError, match="fusion_bg"):
        WSRVOS(model, WSRVOSConfig(fusion_fg=0.2, fusion_bg=0.5))
    method = WSRVOS(model)
    with pytest.raises(ConfigError, match="weighted but were not computed"):
        method.combine({"cls": torch.tensor(1.0), "cls_skipped": torch.tensor(0.0), "fusion_active": torch.tensor(1.0),
                        "ranking_skipped": torch.tensor(0.0)})


def test_total_is_the_weighted_sum_and_fusion_waits_for_its_warm_up():
    torch.manual_seed(0)
    method = WSRVOS(build_model(model_config()), WSRVOSConfig(fusion_from_step=1, weights={
        "cls": 1.0, "fusion_dice": 2.0, "fusion_focal": 3.0, "ranking": 0.5}))
    b = batch_of(augmented())
    first = method(b)  # step 0: warming up
    assert float(first["fusion_active"]) == 0.0 and "fusion_dice" not in first
    assert float(first["loss"]) == pytest.approx(float(first["cls"]) + 0.5 * float(first["ranking"]), rel=1e-6)
    second = method(b)
    assert float(second["fusion_active"]) == 1.0 and int(method.steps_seen) == 2
    expected = sum(w * float(second[k]) for k, w in method.weights.items())
    assert float(second["loss"]) == pytest.approx(expected, rel=1e-6)
    assert 0.0 < float(second["pseudo_confident"]) <= 1.0
    second["loss"].backward()
    sel = method.model.fusion.selection
    assert sel.vis.weight.grad is not None and float(sel.vis.weight.grad.abs().sum()) > 0


# ---- end to end --------------------------------------------------------------------------------------------------
def test_trains_end_to_end_with_a_tiny_model(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_train_config(steps=6, batch_size=2)
    cfg = replace(cfg, model=model_config(), method=MethodConfig("wsrvos", {"fusion_from_step": 2}),
                  data=replace(cfg.data, regime="text", clip=replace(cfg.data.clip, negatives=False)))
    trainer = Trainer(cfg, tmp_path / "run", records=apply_regime(augmented(3), "text"))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    last = trainer.fit()
    assert math.isfinite(last["loss"]) and last["fusion_active"] == 1.0 and "cls" in last
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("head.") for k in changed) and any(k.startswith("expression_scorer.") for k in changed)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    # resume: the method's step counter (the warm-up clock) is checkpointed
    again = Trainer(cfg, tmp_path / "run", records=apply_regime(augmented(3), "text"), resume=True)
    assert int(again.method.steps_seen) == int(trainer.method.steps_seen) == 6


TINY = ["model.vision=tiny", "model.vision_pretrained=false", "model.vision_frozen=false", "model.text=tiny",
        "model.text_frozen=false", "model.dim=16", "model.num_heads=2", "model.fpn_dims=[16,16,8]", "model.mask_dim=8",
        "model.dyn_hidden=8", "model.num_queries=3", "model.fusion_stride=32", "data.clip.size=[64,96]",
        "data.clip.num_frames=3", "loop.steps=4", "loop.batch_size=2", "loop.feature_cache=off", "loop.device=cpu",
        "loop.checkpoint_every=2", "loop.log_every=1", "loop.progress=false", "loop.plot=false", "data.val_split=null",
        "method.params.fusion_from_step=2", "optim.backbone_lr=1e-3"]


def test_cli_augment_then_train_on_a_tiny_synthetic_benchmark(tmp_path, text_data, capsys):
    from rvos.data.synth import SynthConfig, generate

    data = tmp_path / "synth"
    generate(data, SynthConfig(seed=0, train=3, valid=0, test=1, frames=8, height=64, width=96, max_expressions=3,
                               absent_per_video=1, paraphrases=0, hard_negatives=0, workers=1))
    aug = tmp_path / "aug.jsonl"
    assert main(["augment", str(data), "--split", "train", "--backend", "rules", "--out", str(aug), "--scorer", "none",
                 "--positives", "3", "--negatives", "4", "--text-dir", str(text_data)]) == 0
    assert "9 expressions augmented" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", "wsrvos_synth", f"data.root={data}", f"data.augment={aug}", *TINY, "--out", str(run)]) == 0
    logs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    parts = [r for r in logs if "cls" in r]
    assert parts and all(math.isfinite(r["loss"]) for r in parts)
    assert parts[-1]["fusion_active"] == 1.0 and "fusion_dice" in parts[-1]
    assert (run / "checkpoints" / "last.pt").is_file()
    assert main(["train", "wsrvos_synth", f"data.root={data}", "data.regime=full", *TINY,
                 "--out", str(tmp_path / "r2")]) == 2  # full masks reach the method: refused
    assert "data.regime=text" in capsys.readouterr().err


def test_token_classification_without_absent_sentences_is_flagged_not_an_error():
    """w/o augmentation only the other objects' expressions compete, and they are true of the video's tokens."""
    torch.manual_seed(0)
    method = WSRVOS(build_model(model_config()), WSRVOSConfig(augmentation=False, token_classification=True))
    parts = method(batch_of(augmented()))
    assert float(parts["cls_token_skipped"]) == 1.0 and "cls_token" not in parts and "cls" in parts
