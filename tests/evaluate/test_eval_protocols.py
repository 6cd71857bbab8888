"""Protocols on hand-made videos (numbers by hand) and on the DAVIS sample against the official results."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from rvos.data.readers import open_dataset
from rvos.data.types import Expression
from rvos.errors import ConfigError, DatasetError
from rvos.evaluate import MemoryPredictions, Unit, evaluate_predictions, open_predictions


def expression_preds(tiny):
    """a: exactly object 1; b (objects 1 and 2): object 1 only; n (no target): empty on frames 0-1, not after."""
    def masks(video_id, key, t):
        if key == "n":
            return tiny.OBJ[1] if t >= 2 else np.zeros((tiny.H, tiny.W), bool)
        return tiny.OBJ[1]
    return MemoryPredictions(masks)


# Expression b: J = 25 / 50; boundaries far apart, all 20 predicted ones matched, 20 of 40 gt ones: F = 2/3.
J_B, F_B = 0.5, 2 / 3


def test_all_frames_by_hand(tiny):
    res = evaluate_predictions([tiny.make_record()], expression_preds(tiny), "all-frames")
    per_exp = {r["Expression"]: r for r in res.tables["per-expression"]}
    assert (per_exp["a"]["J"], per_exp["a"]["F"]) == (1.0, 1.0)
    assert per_exp["b"]["J"] == pytest.approx(J_B) and per_exp["b"]["F"] == pytest.approx(F_B)
    assert (per_exp["n"]["J"], per_exp["n"]["F"]) == (0.5, 0.5)  # 1 on the 2 empty frames, 0 on the others
    j, f = (1 + J_B + 0.5) / 3, (1 + F_B + 0.5) / 3
    assert res.summary["J"] == pytest.approx(j) and res.summary["F"] == pytest.approx(f)
    assert res.summary["J&F"] == pytest.approx((j + f) / 2) and res.summary["frames"] == 12
    assert res.tables["per-sequence"][0]["Sequence"] == "vid" and res.tables["per-sequence"][0]["J-Mean"] == pytest.approx(j)


def test_no_target_frame_with_full_mask_scores_zero(tiny):
    full = MemoryPredictions(lambda v, k, t: np.ones((tiny.H, tiny.W), bool))
    rec = tiny.make_record(expressions=[Expression("n", "nothing", [])])
    res = evaluate_predictions([rec], full, "all-frames")
    assert (res.summary["J"], res.summary["F"]) == (0.0, 0.0)  # the official F alone would give 1


def test_davis_semi_excludes_first_and_last_frame(tiny):
    res = evaluate_predictions([tiny.make_record()], expression_preds(tiny), "davis-semi")
    assert len(res.tables["per-frame"]) == 3 * 2  # frames 1 and 2 of 4
    seq = {r["Sequence"]: r for r in res.tables["per-sequence"]}
    assert seq["vid_n"]["J-Mean"] == 0.5 and seq["vid_b"]["F-Mean"] == pytest.approx(F_B)
    assert res.summary["J-Mean"] == pytest.approx((1 + J_B + 0.5) / 3)


def test_object_level_predictions_score_objects(tiny):
    preds = MemoryPredictions(lambda v, o, t: tiny.OBJ[1] if o == 1 else np.zeros((tiny.H, tiny.W), bool), level="object")
    res = evaluate_predictions([tiny.make_record()], preds, "davis-semi")
    seq = {r["Sequence"]: r for r in res.tables["per-sequence"]}
    assert set(seq) == {"vid_1", "vid_2"}
    assert (seq["vid_1"]["J-Mean"], seq["vid_2"]["J-Mean"], seq["vid_2"]["F-Mean"]) == (1.0, 0.0, 0.0)
    assert res.summary["J&F-Mean"] == 0.5
    with pytest.raises(DatasetError, match="refers to no object"):
        evaluate_predictions([tiny.make_record()], preds, "all-frames")  # expression n has no object id


def test_r2_by_hand(tiny):
    res = evaluate_predictions([tiny.make_record()], expression_preds(tiny), "r2")
    s = res.summary
    assert (s["pos_area"], s["neg_area"]) == (200, 50)  # a and b: 4 frames x 25 px; n: 2 frames x 25 px
    assert s["R"] == 0.75 and s["J"] == pytest.approx((1 + J_B) / 2) and s["F"] == pytest.approx((1 + F_B) / 2)
    assert s["J&F&R"] == pytest.approx((s["J"] + s["F"] + 0.75) / 3)
    assert (s["positives"], s["negatives"]) == (2, 1)


def test_a2d_uses_annotated_frames_only(tiny):
    rec = tiny.make_record(n_frames=5, annotated=[1, 3], expressions=[Expression("a", "left", [1])])
    res = evaluate_predictions([rec], MemoryPredictions(lambda v, k, t: tiny.OBJ[1]), "a2d")
    assert res.summary["samples"] == 2 and res.summary["mAP"] == pytest.approx(1.0)
    assert res.summary["P@0.9"] == 1.0 and res.summary["overall_iou"] == 1.0
    assert [r["Frame"] for r in res.tables["per-frame"]] == ["00001", "00003"]


def test_grounding_by_hand(tiny):
    exps = [Expression("a", "left", [1], spans=[(0, 3)]), Expression("b", "left later", [1], spans=[(2, 6)]),
            Expression("n", "nothing", []), Expression("u", "unknown when", [1])]
    rec = tiny.make_record(n_frames=6, expressions=exps)
    masks = lambda v, k, t: tiny.OBJ[1] if (k == "b" and t >= 2) else np.zeros((tiny.H, tiny.W), bool)  # noqa: E731
    preds = MemoryPredictions(masks, spans={("vid", "a"): [(1, 4)]})
    res = evaluate_predictions([rec], preds, "grounding")
    rows = {r["Expression"]: r["tIoU"] for r in res.tables["per-expression"]}
    assert rows == {"a": 0.5, "b": 1.0, "n": 1.0}  # a: spans given; b and n: from the masks
    assert res.summary["tIoU"] == pytest.approx(2.5 / 3) and res.summary["skipped_unknown_spans"] == 1


def test_png_and_rle_json_predictions_match_memory(tiny, tmp_path):
    rec = tiny.make_record()
    mem = expression_preds(tiny)
    doc = {"vid": {}}
    for e in rec.expressions:
        doc["vid"][e.exp_id] = {"masks": {}}
        folder = tmp_path / "png" / "vid" / e.exp_id  # Ref-YouTube-VOS submission layout, 0/255 masks
        folder.mkdir(parents=True)
        for t, name in enumerate(rec.video.frame_names):
            m = mem.mask(rec.video, Unit("vid", e.exp_id, tuple(e.obj_ids), (), "expression"), t)
            Image.fromarray(m.astype(np.uint8) * 255).save(folder / f"{name}.png")
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            doc["vid"][e.exp_id]["masks"][name] = {"size": rle["size"], "counts": rle["counts"].decode()} if m.any() else None
    (tmp_path / "p.json").write_text(json.dumps(doc))
    expected = evaluate_predictions([rec], mem, "all-frames").summary
    for source in (tmp_path / "png", tmp_path / "p.json"):
        preds = open_predictions(source)
        assert preds.level == "expression"
        assert evaluate_predictions([rec], preds, "all-frames").summary == pytest.approx(expected)
    doc["vid"]["n"]["present"] = False  # gated: the no-target expression becomes perfect
    (tmp_path / "p.json").write_text(json.dumps(doc))
    per_exp = evaluate_predictions([rec], open_predictions(tmp_path / "p.json"), "all-frames").tables["per-expression"]
    assert [r["J"] for r in per_exp if r["Expression"] == "n"] == [1.0]


def test_plain_mapping_is_accepted(tiny):
    rec = tiny.make_record(n_frames=2, expressions=[Expression("a", "left", [1])])
    masks = {("vid", "a", t): tiny.OBJ[1] for t in range(2)}
    assert evaluate_predictions([rec], masks, "all-frames").summary["J"] == 1.0
    del masks[("vid", "a", 1)]
    with pytest.raises(DatasetError, match="no predicted mask for video 'vid', expression 'a', frame 1"):
        evaluate_predictions([rec], masks, "all-frames")


def test_bad_predictions_name_the_file(tiny, tmp_path):
    rec = tiny.make_record(expressions=[Expression("a", "left", [1])])
    folder = tmp_path / "pred" / "vid"
    for t in range(4):
        tiny.palette_png(folder / f"{t:05d}.png", tiny.OBJ[1].astype(np.uint8))
    (folder / "00002.png").unlink()
    with pytest.raises(DatasetError, match="missing prediction PNG: .*vid/00002.png"):
        evaluate_predictions([rec], open_predictions(tmp_path / "pred"), "all-frames")
    tiny.palette_png(folder / "00002.png", np.zeros((10, 30), np.uint8))
    with pytest.raises(DatasetError, match=r"00002.png is 30x10 \(WxH\), expected 20x20"):
        evaluate_predictions([rec], open_predictions(tmp_path / "pred"), "all-frames")
    (folder / "00002.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="unreadable prediction PNG: .*00002.png"):
        evaluate_predictions([rec], open_predictions(tmp_path / "pred"), "all-frames")
    with pytest.raises(ConfigError, match="unknown protocol"):
        evaluate_predictions([rec], open_predictions(tmp_path / "pred"), "davis")


# ---- the DAVIS sample against the official davis2017-evaluation output -----------------------------------------

@pytest.fixture(scope="module")
def davis_results(davis_sample):
    records = open_dataset(davis_sample)
    preds = open_predictions(davis_sample / "osvos_predictions")
    return (evaluate_predictions(records, preds, "davis-semi"), evaluate_predictions(records, preds, "all-frames"))


def _round3(v: float) -> float:
    return float(f"{v:.3f}")  # the official CSVs are written with float_format="%.3f"


def test_davis_semi_reproduces_official_results(davis_sample, davis_results):
    semi = davis_results[0]
    official = next(csv.DictReader(open(davis_sample / "reference_eval" / "global_results-val.csv")))
    assert set(official) == set(semi.summary)
    for k, v in official.items():
        assert abs(_round3(semi.summary[k]) - float(v)) < 1e-6, k
    assert abs(semi.summary["J&F-Mean"] - 0.850584) < 1e-6  # the unrounded value the README states
    rows = list(csv.DictReader(open(davis_sample / "reference_eval" / "per-sequence_results-val.csv")))
    assert [r["Sequence"] for r in rows] == [r["Sequence"] for r in semi.tables["per-sequence"]]
    for ours, ref in zip(semi.tables["per-sequence"], rows):
        for k in ("J-Mean", "F-Mean"):
            assert abs(_round3(ours[k]) - float(ref[k])) < 1e-6, (ref["Sequence"], k)


def test_all_frames_per_frame_numbers_equal_official(davis_sample, davis_results):
    per_frame = {(r["Video"], r["Frame"]): r for r in davis_results[1].tables["per-frame"]}
    rows = list(csv.DictReader(open(davis_sample / "reference_eval" / "osvos_per_frame_J_F.csv")))
    assert len(per_frame) == len(rows) == 495
    for row in rows:
        ours = per_frame[(row["sequence"], row["frame"])]
        assert abs(ours["J"] - float(row["J"])) < 1e-6 and abs(ours["F"] - float(row["F"])) < 1e-6
    j = np.mean([np.mean([float(r["J"]) for r in rows if r["sequence"] == s]) for s in {r["sequence"] for r in rows}])
    assert davis_results[1].summary["J"] == pytest.approx(j, abs=1e-6)
