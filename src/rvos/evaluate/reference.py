"""A direct, unoptimised transcription of the official DAVIS 2017 J and F (full-image arrays, scipy dilation).

It is the yardstick for `rvos.evaluate.jf.frame_jf`: tests check that the fast path gives the same numbers on
masks where cropping could matter (touching the image border, empty, full), and `benchmarks/eval_speed.py`
times it as "the straightforward way". Not used by the protocols.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from rvos.evaluate.jf import BOUND_TH, bound_pix, disk, f_from_counts


def reference_iou(gt: np.ndarray, pred: np.ndarray) -> float:
    gt, pred = gt.astype(bool), pred.astype(bool)
    union = np.sum(pred | gt)
    return 1.0 if np.isclose(union, 0) else float(np.sum(pred & gt) / union)


def reference_seg2bmap(seg: np.ndarray) -> np.ndarray:
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def reference_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    structure = disk(bound_pix(pred.shape, bound_th)).astype(bool)
    fg_b, gt_b = reference_seg2bmap(pred), reference_seg2bmap(gt)
    fg_dil = ndimage.binary_dilation(fg_b, structure=structure)
    gt_dil = ndimage.binary_dilation(gt_b, structure=structure)
    n_fg, n_gt = int(np.sum(fg_b)), int(np.sum(gt_b))
    return f_from_counts(n_fg, n_gt, int(np.sum(fg_b & gt_dil)), int(np.sum(gt_b & fg_dil)))
