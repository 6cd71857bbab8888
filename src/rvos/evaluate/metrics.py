"""Metrics with one shape: `reset()`, `update(pred, gt, ...)` per frame or sample, `result() -> dict`.

- `JFMetric`: DAVIS J and F per frame (`rvos.evaluate.jf`), summarised with the official mean/recall/decay.
- `A2DMetric`: A2D-Sentences / JHMDB-Sentences frame-level metrics as MTTR and ReferFormer compute them:
  IoU = (I + 1e-6) / (U + 1e-6), P@k = fraction of samples with IoU > k, overall IoU = sum I / sum U, mean IoU,
  and COCO mask mAP@0.5:0.95 (pycocotools COCOeval, iouType "segm", useCats = 0: one category, one image per
  annotated (expression, frame) sample holding the ground-truth mask, one scored prediction per sample).
- `RobustnessMetric`: R2-VOS R = 1 - (predicted foreground area in negative video-expression pairs) / (predicted
  foreground area in positive pairs) (R2-VOS paper, section 5.1).
- `TemporalIoUMetric`: temporal IoU of predicted and annotated spans (half-open frame intervals).
"""
from __future__ import annotations

import contextlib
import io
import math
from typing import Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from rvos.evaluate.jf import BOUND_TH, db_statistics, frame_jf

P_AT = (0.5, 0.6, 0.7, 0.8, 0.9)
COCO_LABELS = ("mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")  # COCOeval.stats[:6]: AP@[.5:.95], @.5, @.75, S/M/L


class JFMetric:
    """Per-frame J and F of one target (an object or an expression) through a video."""

    def __init__(self, bound_th: float = BOUND_TH):
        self.bound_th = bound_th
        self.reset()

    def reset(self) -> None:
        self.j: list[float] = []
        self.f: list[float] = []

    def update(self, pred: np.ndarray, gt: np.ndarray, void: Optional[np.ndarray] = None) -> tuple[float, float]:
        j, f = frame_jf(pred, gt, void, self.bound_th)
        self.add(j, f)
        return j, f

    def add(self, j: float, f: float) -> None:
        """Record a frame's (J, F) computed elsewhere (e.g. in a thread pool, or a no-target rule)."""
        self.j.append(float(j))
        self.f.append(float(f))

    def result(self) -> dict:
        jm, jr, jd = db_statistics(self.j)
        fm, fr, fd = db_statistics(self.f)
        return {"J&F": (jm + fm) / 2, "J": jm, "J-Recall": jr, "J-Decay": jd,
                "F": fm, "F-Recall": fr, "F-Decay": fd, "frames": len(self.j)}


def mttr_iou(pred: np.ndarray, gt: np.ndarray, eps: float = 1e-6) -> tuple[float, int, int]:
    """(IoU, intersection, union) as MTTR/ReferFormer: (I + eps) / (U + eps), so two empty masks give 1."""
    inter = int(np.count_nonzero(pred & gt))
    union = int(np.count_nonzero(pred | gt))
    return (inter + eps) / (union + eps), inter, union


def _rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))


class A2DMetric:
    """Frame-level referring segmentation metrics of A2D-Sentences and JHMDB-Sentences."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.ious: list[float] = []
        self.inter = 0
        self.union = 0
        self.gt_rles: list[dict] = []
        self.pred_rles: list[dict] = []
        self.scores: list[float] = []

    @staticmethod
    def sample(pred: np.ndarray, gt: np.ndarray) -> tuple:
        """What one sample contributes: (IoU, intersection, union, gt RLE, pred RLE). Thread-safe."""
        pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
        return (*mttr_iou(pred, gt), _rle(gt), _rle(pred))

    def update(self, pred: np.ndarray, gt: np.ndarray, score: float = 1.0) -> float:
        sample = self.sample(pred, gt)
        self.add(sample, score)
        return sample[0]

    def add(self, sample: tuple, score: float = 1.0) -> None:
        iou, inter, union, gt_rle, pred_rle = sample
        self.ious.append(iou)
        self.inter += inter
        self.union += union
        self.gt_rles.append(gt_rle)
        self.pred_rles.append(pred_rle)
        self.scores.append(float(score))

    def coco_map(self) -> dict:
        """COCO mask AP of the samples, categories ignored."""
        if not self.ious:
            return {k: math.nan for k in COCO_LABELS}
        images, anns, dets = [], [], []
        for i, (g, p, s) in enumerate(zip(self.gt_rles, self.pred_rles, self.scores), start=1):
            h, w = (int(x) for x in g["size"])
            images.append({"id": i, "height": h, "width": w})
            anns.append({"id": i, "image_id": i, "category_id": 1, "segmentation": g, "iscrowd": 0,
                         "area": float(mask_utils.area(g)), "bbox": [float(x) for x in mask_utils.toBbox(g)]})
            dets.append({"image_id": i, "category_id": 1, "segmentation": p, "score": s})
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco_gt = COCO()
            coco_gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dets)
            ev = COCOeval(coco_gt, coco_dt, iouType="segm")
            ev.params.useCats = 0
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return {k: float(v) for k, v in zip(COCO_LABELS, ev.stats[:6])}

    def result(self) -> dict:
        n = len(self.ious)
        out = {f"P@{k}": (sum(i > k for i in self.ious) / n if n else math.nan) for k in P_AT}
        out["overall_iou"] = self.inter / self.union if self.union else math.nan
        out["mean_iou"] = float(np.mean(self.ious)) if n else math.nan
        out.update(self.coco_map())
        out["samples"] = n
        return out


class RobustnessMetric:
    """R2-VOS R over video-expression pairs; `update(pred, positive)`: the pair label plays the ground truth."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.pos_area = 0
        self.neg_area = 0

    def update(self, pred: np.ndarray, positive: bool) -> None:
        self.add(int(np.count_nonzero(pred)), positive)

    def add(self, area: int, positive: bool) -> None:
        if positive:
            self.pos_area += area
        else:
            self.neg_area += area

    def result(self) -> dict:
        """R = 1 - neg/pos; 1 when nothing is predicted anywhere, NaN when only negatives have foreground."""
        if self.pos_area == 0:
            r = 1.0 if self.neg_area == 0 else math.nan
        else:
            r = 1.0 - self.neg_area / self.pos_area
        return {"R": r, "neg_area": self.neg_area, "pos_area": self.pos_area}


def span_frames(spans: Sequence[tuple[int, int]]) -> set[int]:
    return {t for s, e in spans for t in range(int(s), int(e))}


def temporal_iou(pred: Sequence[tuple[int, int]], gt: Sequence[tuple[int, int]]) -> float:
    """|P & G| / |P | G| over the frames covered by the half-open spans; 1 when both cover no frame."""
    p, g = span_frames(pred), span_frames(gt)
    union = len(p | g)
    return 1.0 if union == 0 else len(p & g) / union


class TemporalIoUMetric:
    """Mean temporal IoU over expressions; `update(pred_spans, gt_spans)` once per expression."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.values: list[float] = []

    def update(self, pred: Sequence[tuple[int, int]], gt: Sequence[tuple[int, int]]) -> float:
        v = temporal_iou(pred, gt)
        self.values.append(v)
        return v

    def result(self) -> dict:
        n = len(self.values)
        return {"tIoU": float(np.mean(self.values)) if n else math.nan,
                "tIoU@0.5": (sum(v >= 0.5 for v in self.values) / n) if n else math.nan, "expressions": n}


def spans_from_masks(nonempty: Sequence[bool]) -> list[tuple[int, int]]:
    """Half-open spans of consecutive frames whose predicted mask is non-empty."""
    spans, start = [], None
    for t, on in enumerate(nonempty):
        if on and start is None:
            start = t
        elif not on and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, len(nonempty)))
    return spans
