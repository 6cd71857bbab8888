"""Annotation cost: hand-counted on small records, the WRVOS 8.2x figure, and `rvos data stats` on real DAVIS."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rvos.data.cost import (
    WRVOS_FRAMES_PER_OBJECT,
    annotation_cost,
    compare_regimes,
    wrvos_object_cost,
)
from rvos.data.regimes import MaskBoxes, apply_regime
from rvos.data.stats import dataset_stats, format_stats
from rvos.data.types import ArrayMask, FrameTarget, ObjectTrack, TargetKind, Video, VideoRecord
from rvos.errors import ConfigError, DatasetError

from test_regimes import blank_frames, build, total_loads

PRICES = dict(mask_seconds=79.0, box_seconds=7.0, span_seconds=10.0)


def test_wrvos_formula_reproduces_the_paper():
    # WRVOS Sec. V-B: "x8 times (2157 / (1 x 79 + 26.3 x 7) = 8.2) faster than labeling all frames with masks"
    c = wrvos_object_cost(WRVOS_FRAMES_PER_OBJECT)
    assert WRVOS_FRAMES_PER_OBJECT == 27.3
    assert c["full"] == pytest.approx(2156.7) and round(c["full"]) == 2157  # "costs about 2157 seconds"
    assert c["mask_box"] == pytest.approx(79 + 26.3 * 7) == pytest.approx(263.1)
    assert c["full"] / c["mask_box"] == pytest.approx(8.197263, abs=1e-6)
    assert round(2157 / c["mask_box"], 1) == 8.2 and round(c["full"] / c["mask_box"], 1) == 8.2
    assert c["full"] / c["box"] == pytest.approx(79 / 7) and int(c["full"] / c["box"]) == 11  # Weak_B "x11"
    assert c["full"] / c["mask"] == pytest.approx(27.3) and int(c["full"] / c["mask"]) == 27  # Weak_M "x27"


def test_records_with_27_3_frames_per_object_cost_8_2x_less():
    # 10 objects, 3 visible in 28 frames and 7 in 27: 273 frames, 27.3 per object on average.
    dot = ArrayMask(np.array([[0, 1], [0, 0]], bool))
    recs = []
    for i, n in enumerate([28] * 3 + [27] * 7):
        track = ObjectTrack(1, [FrameTarget(TargetKind.MASK, mask=dot) for _ in range(n)])
        recs.append(VideoRecord(Video(f"v{i}", blank_frames(n, 2, 2), 2, 2), {1: track}, []))
    costs = compare_regimes(recs, **PRICES)
    assert costs["full"].masks == 273 and costs["full"].seconds == 273 * 79
    assert (costs["mask_box"].masks, costs["mask_box"].boxes) == (10, 263)
    assert costs["mask_box"].seconds == 10 * 79 + 263 * 7
    assert costs["mask_box"].speedup == pytest.approx(8.197263, abs=1e-6)
    assert costs["mask_box"].speedup == pytest.approx(
        wrvos_object_cost(27.3)["full"] / wrvos_object_cost(27.3)["mask_box"])


def test_costs_counted_by_hand():
    recs = build()
    memo = MaskBoxes()
    costs = compare_regimes(recs, seed=5, boxes=memo, **PRICES)
    assert total_loads(recs) == 9 and memo.loads == 9  # every mask decoded once for all seven regimes
    # drawn masks in full: obj 1 frames 1-3, obj 2 frames 0 and 2, obj 3 frame 1
    got = {k: (r.masks, r.boxes, r.spans, r.seconds) for k, r in costs.items()}
    assert got == {
        "full": (6, 0, 0, 474.0),
        "spans": (6, 0, 3, 474.0 + 30.0),  # spans (1,4); (0,2),(2,4); none for the negative
        "mask_box": (3, 3, 0, 3 * 79 + 3 * 7.0),
        "mask_box_random": (3, 3, 0, 258.0),
        "box": (0, 6, 0, 42.0),
        "mask": (3, 0, 0, 237.0),
        "text": (0, 0, 0, 0.0),
    }
    mb = costs["mask_box"]
    assert (mb.mask_frames, mb.box_frames, mb.none_frames) == (3, 6, 3)
    assert mb.full_seconds == 474.0 and mb.speedup == pytest.approx(474 / 258)
    assert mb.ratio_to_full == pytest.approx(258 / 474) and mb.hours == pytest.approx(258 / 3600)
    assert costs["text"].speedup is None and costs["text"].ratio_to_full == 0.0
    d = mb.to_dict()
    assert d["seconds"] == 258.0 and d["regime"] == "mask_box" and d["masks"] == 3


def test_prices_and_span_cost_are_parameters():
    r = annotation_cost(apply_regime(build(), "spans"), mask_seconds=100.0, box_seconds=1.0, span_seconds=4.0)
    assert (r.masks, r.spans, r.seconds) == (6, 3, 612.0)
    assert annotation_cost(apply_regime(build(), "box"), box_seconds=2.5).seconds == 15.0
    assert annotation_cost(apply_regime(build(), "box")).full_seconds is None
    bad = VideoRecord(Video("v9", blank_frames(1, 2, 2), 2, 2), {4: ObjectTrack(4, [FrameTarget(TargetKind.MASK)])}, [])
    with pytest.raises(DatasetError, match="v9.*object 4 frame 0"):
        annotation_cost([bad])


def test_dataset_stats_in_memory():
    s = dataset_stats(build(), regime="mask_box", **PRICES)
    assert (s["videos"], s["frames"], s["objects"]) == (2, 8, 3)
    assert s["expressions"] == {"total": 4, "positive": 3, "negative": 1, "multi_object": 1, "with_spans": 3}
    assert s["annotated_frames"] == {"mask": 3, "box": 6, "none": 3, "masks_drawn": 3, "boxes_drawn": 3}
    assert s["cost"]["seconds"] == 258.0 and list(s["regimes"]) == [
        "full", "spans", "mask_box", "mask_box_random", "box", "mask", "text"]
    text = format_stats(s)
    assert "258 s" in text and "mask_box" in text and "x1.84" in text and "free" in text
    json.dumps(s)  # JSON-ready
    with pytest.raises(ConfigError, match="unknown supervision regime 'dense'"):
        dataset_stats(build(), regime="dense")


def test_cli_on_the_davis_sample(davis_sample, capsys):
    from rvos.cli import main

    assert main(["data", "stats", str(davis_sample), "--regime", "mask_box", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["videos"], s["frames"], s["objects"]) == (6, 495, 6)
    assert s["expressions"]["total"] == 6 and s["expressions"]["positive"] == 6
    r = s["regimes"]
    assert r["full"]["seconds"] == 495 * 79 and r["full"]["masks"] == 495
    assert r["mask_box"]["seconds"] == 6 * 79 + 489 * 7 and s["cost"] == r["mask_box"]
    assert r["box"]["seconds"] == 495 * 7 and r["mask"]["seconds"] == 6 * 79 and r["text"]["seconds"] == 0
    assert r["mask_box_random"]["seconds"] == 6 * 79 + 489 * 7
    assert s["annotated_frames"] == {"mask": 6, "box": 489, "none": 0, "masks_drawn": 6, "boxes_drawn": 489}
    assert r["mask_box"]["speedup"] == pytest.approx(495 * 79 / (6 * 79 + 489 * 7))

    assert main(["data", "stats", str(davis_sample), "--regime", "box"]) == 0
    out = capsys.readouterr().out
    assert "frames       495" in out and "3,465 s" in out
