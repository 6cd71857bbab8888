"""J and F of single frames: hand-computed cases, the official empty-mask conventions, the fast path against a
straightforward transcription, and the official per-frame numbers of OSVOS on the DAVIS sample."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from rvos.evaluate.jf import bound_pix, db_statistics, disk, f_measure, frame_jf, jaccard, seg2bmap
from rvos.evaluate.reference import reference_f, reference_iou


def square(r0: int, c0: int, size: int = 5, shape=(20, 20)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[r0 : r0 + size, c0 : c0 + size] = True
    return m


def test_disk_is_points_within_radius():
    expected = np.array([[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(disk(2), expected)
    assert disk(8).shape == (17, 17) and disk(8).sum() == 197  # lattice points in a radius-8 disk


def test_bound_pix_is_ceil_of_fraction_of_diagonal():
    assert bound_pix((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert bound_pix((20, 20)) == 1
    assert bound_pix((20, 20), bound_th=3) == 3  # >= 1 means pixels


def test_seg2bmap_compares_right_bottom_and_bottom_right_neighbours():
    one = np.zeros((3, 3), bool)
    one[1, 1] = True
    np.testing.assert_array_equal(seg2bmap(one), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    corner = np.zeros((3, 3), bool)
    corner[2, 2] = True  # last row: right neighbour only; last column: bottom only; corner forced to 0
    np.testing.assert_array_equal(seg2bmap(corner), [[0, 0, 0], [0, 1, 1], [0, 1, 0]])
    # a 5x5 square: its last row and column (9 pixels) and the outer row above / column left (11 pixels)
    assert seg2bmap(square(5, 5)).sum() == 20


def test_shifted_squares_by_hand():
    gt = square(5, 5)
    # shifted one column: J = 20/30; every boundary pixel within the 1-pixel tolerance -> F = 1
    assert jaccard(square(5, 6), gt) == pytest.approx(2 / 3)
    assert f_measure(square(5, 6), gt) == 1.0
    # shifted three columns: J = 10/40; 10 of 20 boundary pixels matched each way -> P = R = F = 0.5
    assert frame_jf(square(5, 8), gt) == (pytest.approx(0.25), pytest.approx(0.5))


def test_empty_mask_conventions():
    z, sq, full = np.zeros((20, 20), bool), square(5, 5), np.ones((20, 20), bool)
    assert frame_jf(z, z) == (1.0, 1.0)  # nothing to find, nothing found
    assert frame_jf(z, sq) == (0.0, 0.0)  # no predicted boundary: precision 1, recall 0
    assert frame_jf(sq, z) == (0.0, 0.0)  # no gt boundary: precision 0, recall 1
    assert frame_jf(full, full) == (1.0, 1.0)
    # official quirk: a full-frame mask has no boundary, so against an empty gt F is 1 (J is 0)
    assert frame_jf(full, z) == (0.0, 1.0)


def test_void_pixels_are_ignored():
    gt, pred = square(5, 5), square(5, 8)
    void = np.zeros_like(gt)
    void[:, 10:] = True  # hides the part of pred outside gt
    assert jaccard(pred, gt, void) == pytest.approx(10 / 25)


@pytest.mark.parametrize("seed", range(6))
def test_fast_path_equals_straightforward_transcription(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(30, 90, size=2)
    # blobs that touch the borders, random noise and empty/full masks
    masks = [rng.random((h, w)) < 0.1, np.zeros((h, w), bool), np.ones((h, w), bool)]
    for _ in range(3):
        m = np.zeros((h, w), bool)
        r, c = rng.integers(0, h), rng.integers(0, w)
        m[max(r - 15, 0) : r + 15, max(c - 20, 0) : c + 20] = True
        masks.append(m)
    for pred in masks:
        for gt in masks:
            j, f = frame_jf(pred, gt)
            assert j == reference_iou(gt, pred)
            assert f == reference_f(gt, pred)


def test_db_statistics_by_hand():
    # 8 frames: bins are v[0:3], v[2:5], v[4:6], v[5:8] (official rounding, shared edges)
    v = [1.0, 1.0, 0.7, 0.6, 0.4, 0.4, 0.2, 0.0]
    mean, recall, decay = db_statistics(v)
    assert mean == pytest.approx(4.3 / 8)
    assert recall == 0.5
    assert decay == pytest.approx(0.9 - 0.2)


def test_official_per_frame_numbers_of_osvos(davis_sample):
    rows = list(csv.DictReader(open(davis_sample / "reference_eval" / "osvos_per_frame_J_F.csv")))
    assert len(rows) == 495
    for row in rows[::7]:  # every 7th frame here; all frames go through the protocol test
        seq, frame = row["sequence"], row["frame"]
        pred = np.asarray(Image.open(davis_sample / "osvos_predictions" / seq / f"{frame}.png")) == 1
        gt = np.asarray(Image.open(davis_sample / "DAVIS" / "Annotations" / "480p" / seq / f"{frame}.png")) == 1
        assert (gt.sum(), pred.sum()) == (int(row["gt_pixels"]), int(row["pred_pixels"]))
        j, f = frame_jf(pred, gt)
        assert abs(j - float(row["J"])) < 1e-6 and abs(f - float(row["F"])) < 1e-6, (seq, frame)
