"""Region similarity J and boundary F-measure of one frame, exactly as the official DAVIS 2017 evaluation
(davisvideochallenge/davis2017-evaluation, `davis2017/metrics.py`: db_eval_iou, f_measure, _seg2bmap), computed
fast: both masks are cropped to the box around their union (plus one pixel), which changes no number because
every boundary pixel and every pixel a dilation can reach from one lies inside it (see `frame_jf`).

Conventions carried over from the official code:
- J = |pred & gt| / |pred | gt|, and 1 when both masks are empty.
- F: boundaries by `seg2bmap` (a pixel is a boundary pixel when it differs from its right, bottom or bottom-right
  neighbour; special rules on the last row and column), tolerance `ceil(0.008 * image diagonal)` pixels, matched by
  dilating the other boundary with a disk (points with x^2 + y^2 <= r^2, as skimage.morphology.disk).
  No predicted boundary and some gt boundary: precision 1, recall 0; the reverse: precision 0, recall 1; neither:
  both 1. F = 2PR / (P + R), 0 when P + R = 0.
- Void pixels (optional) are removed from both masks before J and F.
"""
from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

BOUND_TH = 0.008  # boundary tolerance as a fraction of the image diagonal (official default)


def disk(radius: int) -> np.ndarray:  # uint8 [2r+1, 2r+1]
    """Disk structuring element: the points with x^2 + y^2 <= r^2 (skimage.morphology.disk)."""
    r = int(radius)
    y, x = np.ogrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y <= r * r).astype(np.uint8)


def bound_pix(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Boundary tolerance in pixels: `bound_th` itself when >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return int(np.ceil(bound_th * np.linalg.norm(shape[:2])))


def seg2bmap(seg: np.ndarray) -> np.ndarray:  # bool [H, W] -> bool [H, W]
    """One-pixel-wide boundary map of a binary mask (David Martin's seg2bmap, as in the official code)."""
    seg = np.asarray(seg, dtype=bool)
    b = np.zeros_like(seg)
    core = seg[:-1, :-1]
    # interior: differs from the right, bottom or bottom-right neighbour
    b[:-1, :-1] = (core != seg[:-1, 1:]) | (core != seg[1:, :-1]) | (core != seg[1:, 1:])
    b[-1, :-1] = seg[-1, :-1] != seg[-1, 1:]  # last row: right neighbour only
    b[:-1, -1] = seg[:-1, -1] != seg[1:, -1]  # last column: bottom neighbour only
    b[-1, -1] = False
    return b


def _box(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1), exclusive ends, of the non-zero pixels; None when there are none."""
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0 or h == 0:
        return None
    return y, y + h, x, x + w


def f_from_counts(n_fg: int, n_gt: int, fg_match: int, gt_match: int) -> float:
    """Boundary F-measure from boundary pixel counts, with the official empty-boundary conventions."""
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = fg_match / float(n_fg)
        recall = gt_match / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def frame_jf(
    pred: np.ndarray, gt: np.ndarray, void: Optional[np.ndarray] = None, bound_th: float = BOUND_TH
) -> tuple[float, float]:
    """(J, F) of one frame; pred, gt (and void) bool [H, W]. Identical to the official db_eval_iou and
    db_eval_boundary. Work is done in the box around pred | gt grown by one pixel: seg2bmap there equals
    seg2bmap of the full image (the extra row/column is background in both, so the last-row/column rules give
    the same zeros), and a dilation only needs to be right at boundary pixels, all of which are in the box."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must be the same 2-D shape")
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        pred, gt = pred & keep, gt & keep
    box = _box(pred | gt)
    if box is None:
        return 1.0, 1.0  # J: empty union; F: no boundary on either side
    h, w = pred.shape
    y0, y1, x0, x1 = max(box[0] - 1, 0), min(box[1] + 1, h), max(box[2] - 1, 0), min(box[3] + 1, w)
    p, g = pred[y0:y1, x0:x1], gt[y0:y1, x0:x1]
    j = np.count_nonzero(p & g) / np.count_nonzero(p | g)

    pb, gb = seg2bmap(p), seg2bmap(g)
    n_fg, n_gt = int(np.count_nonzero(pb)), int(np.count_nonzero(gb))
    fg_match = gt_match = 0
    if n_fg > 0 and n_gt > 0:
        kernel = disk(bound_pix((h, w), bound_th))
        pb8, gb8 = pb.view(np.uint8), gb.view(np.uint8)
        fg_match = int(np.count_nonzero(pb & cv2.dilate(gb8, kernel).view(bool)))
        gt_match = int(np.count_nonzero(gb & cv2.dilate(pb8, kernel).view(bool)))
    return float(j), f_from_counts(n_fg, n_gt, fg_match, gt_match)


def jaccard(pred: np.ndarray, gt: np.ndarray, void: Optional[np.ndarray] = None) -> float:
    """Region similarity J of one frame (official db_eval_iou): 1 when both masks are empty."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if void is not None:
        keep = ~np.asarray(void, dtype=bool)
        pred, gt = pred & keep, gt & keep
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def f_measure(pred: np.ndarray, gt: np.ndarray, void: Optional[np.ndarray] = None, bound_th: float = BOUND_TH) -> float:
    """Boundary F-measure of one frame (official f_measure)."""
    return frame_jf(pred, gt, void, bound_th)[1]


def db_statistics(values) -> tuple[float, float, float]:
    """(mean, recall, decay) of per-frame values, as the official davis2017 `utils.db_statistics`: recall is the
    fraction of frames above 0.5; decay is the mean of the first of 4 bins minus the mean of the last, the bins
    being values[ids[i]:ids[i+1]+1] with ids = round(linspace(1, n, 5)) - 1 (neighbouring bins share a frame).
    The official code casts ids to uint8 (wrong past 256 frames); ints here give the same bins below that."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.nanmean(v)) if not np.all(np.isnan(v)) else math.nan
    recall = float(np.nanmean(v > 0.5))
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(int)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    first, last = bins[0][~np.isnan(bins[0])], bins[3][~np.isnan(bins[3])]
    decay = float(first.mean() - last.mean()) if first.size and last.size else math.nan
    return mean, recall, decay
