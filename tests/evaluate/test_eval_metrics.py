"""A2D/JHMDB frame-level metrics, R2-VOS R and temporal IoU on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rvos.evaluate.metrics import (
    A2DMetric,
    JFMetric,
    RobustnessMetric,
    TemporalIoUMetric,
    spans_from_masks,
    temporal_iou,
)


def box(r0, r1, c0, c1, shape=(8, 8)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


def test_a2d_precision_at_k_and_ious_by_hand():
    metric = A2DMetric()
    metric.update(box(0, 2, 0, 2), box(0, 2, 0, 3))  # I 4, U 6: IoU 2/3
    metric.update(box(4, 6, 4, 6), box(0, 2, 0, 2))  # disjoint: I 0, U 8
    metric.update(box(2, 5, 2, 5), box(2, 5, 2, 5))  # perfect: I 9, U 9
    res = metric.result()
    assert res["P@0.5"] == pytest.approx(2 / 3) and res["P@0.6"] == pytest.approx(2 / 3)
    assert res["P@0.7"] == pytest.approx(1 / 3) and res["P@0.9"] == pytest.approx(1 / 3)
    assert res["overall_iou"] == pytest.approx(13 / 23)  # (4 + 0 + 9) / (6 + 8 + 9)
    assert res["mean_iou"] == pytest.approx((2 / 3 + 0 + 1) / 3, abs=1e-6)
    assert res["samples"] == 3


def test_a2d_precision_is_strictly_above_threshold():
    metric = A2DMetric()
    metric.update(box(0, 1, 0, 1), box(0, 1, 0, 2))  # IoU (1 + 1e-6) / (2 + 1e-6), just above 0.5
    metric.update(box(0, 2, 0, 2), box(0, 2, 0, 5))  # IoU 0.4
    assert metric.result()["P@0.5"] == 0.5


def test_a2d_map_perfect_is_one_and_all_wrong_is_zero():
    perfect, wrong = A2DMetric(), A2DMetric()
    for k in range(4):
        gt = box(k, k + 3, 1, 4 + k)
        perfect.update(gt, gt, score=0.5 + 0.1 * k)
        wrong.update(box(k, k + 3, 5, 8) & ~gt, gt)
    assert perfect.result()["mAP"] == pytest.approx(1.0)
    assert perfect.result()["AP50"] == pytest.approx(1.0)
    assert wrong.result()["mAP"] == pytest.approx(0.0)


def test_jf_metric_statistics():
    metric = JFMetric()
    gt = box(2, 6, 2, 6)
    metric.update(gt, gt)
    metric.update(np.zeros_like(gt), gt)
    res = metric.result()
    assert res["J"] == 0.5 and res["F"] == 0.5 and res["J&F"] == 0.5 and res["frames"] == 2
    assert res["J-Recall"] == 0.5


def test_robustness_by_hand():
    metric = RobustnessMetric()
    metric.update(box(0, 2, 0, 5), positive=True)  # 10 px
    metric.update(box(0, 6, 0, 5), positive=True)  # 30 px
    metric.update(box(0, 2, 0, 5), positive=False)  # 10 px of false alarm
    assert metric.result() == {"R": 0.75, "neg_area": 10, "pos_area": 40}
    metric.reset()
    assert metric.result()["R"] == 1.0  # nothing predicted anywhere
    metric.update(box(0, 1, 0, 1), positive=False)
    assert math.isnan(metric.result()["R"])


def test_temporal_iou_by_hand():
    assert temporal_iou([(0, 5)], [(3, 8)]) == 2 / 8
    assert temporal_iou([(0, 2), (4, 6)], [(1, 5)]) == 2 / 6
    assert temporal_iou([], []) == 1.0
    assert temporal_iou([(0, 3)], []) == 0.0
    metric = TemporalIoUMetric()
    metric.update([(0, 5)], [(3, 8)])
    metric.update([(0, 4)], [(0, 4)])
    assert metric.result() == {"tIoU": (0.25 + 1) / 2, "tIoU@0.5": 0.5, "expressions": 2}


def test_spans_from_masks():
    assert spans_from_masks([False, True, True, False, True]) == [(1, 3), (4, 5)]
    assert spans_from_masks([False, False]) == []
