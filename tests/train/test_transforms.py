"""Clip transforms: the flip swaps words and geometry consistently; boxes follow masks through resize/crop."""
import numpy as np
import pytest

from rvos.data import transforms as tf
from rvos.data.types import TargetKind


@pytest.mark.parametrize("text, expected", [
    ("the man on the left", "the man on the right"),
    ("Left dog running right", "Right dog running left"),
    ("the leftmost car", "the rightmost car"),
    ("RIGHTMOST person turning left-hand", "LEFTMOST person turning right-hand"),
    ("a bird flying leftwards", "a bird flying rightwards"),
    ("the cleft rock, bright light", "the cleft rock, bright light"),  # only whole words
    ("left, right, left.", "right, left, right."),
])
def test_swap_left_right(text, expected):
    assert tf.swap_left_right(text) == expected


def _clip(h=20, w=30):
    m = np.zeros((2, h, w), bool)
    m[0, 2:6, 3:9] = True  # frame 0: MASK, box (3, 2, 9, 6)
    boxes = np.array([[3, 2, 9, 6], [10, 4, 20, 14]], np.float32)  # frame 1: BOX
    frames = np.random.default_rng(0).integers(0, 255, (2, h, w, 3), dtype=np.uint8)
    return tf.Clip(frames, m, boxes, np.array([TargetKind.MASK, TargetKind.BOX]), "left cat")


def test_hflip_mirrors_boxes_masks_and_text():
    c = tf.hflip(_clip())
    assert c.text == "right cat" and c.flipped
    assert np.array_equal(c.boxes[0], [30 - 9, 2, 30 - 3, 6])  # box of the flipped mask
    assert np.array_equal(np.argwhere(c.masks[0])[[0, -1]], [[2, 21], [5, 26]])
    assert np.array_equal(c.boxes[1], [10, 4, 20, 14])  # 30-20, 30-10
    assert np.array_equal(tf.hflip(c).frames, _clip().frames)


def test_resize_keeps_boxes_consistent_with_masks():
    c = tf.resize(_clip(), 40, 60)  # x2
    assert c.frames.shape == (2, 40, 60, 3) and c.masks.shape == (2, 40, 60)
    assert np.array_equal(c.boxes[0], [6, 4, 18, 12])  # recomputed from the resized mask
    assert np.array_equal(c.boxes[1], [20, 8, 40, 28])  # scaled BOX


def test_crop_shifts_and_clips_boxes():
    c = tf.crop(_clip(), 3, 5, 10, 12)  # window x in [5, 17), y in [3, 13)
    assert np.array_equal(c.boxes[0], [0, 0, 4, 3])  # mask rows 3..5, cols 5..8 remain
    assert np.array_equal(c.boxes[1], [5, 1, 12, 10])  # (10-5, 4-3, min(20-5,12), min(14-3,10))
    gone = tf.crop(_clip(), 15, 0, 5, 30)  # below both targets
    assert np.isnan(gone.boxes).all() and not gone.present().any()


def test_random_crop_keeps_the_target_visible():
    rng = np.random.default_rng(1)
    for _ in range(20):
        c = tf.random_crop(_clip(), 0.3, rng)
        assert c.present().all()
        assert c.frames.shape[1:3] == c.masks.shape[1:]


def test_photometric_same_draw_for_all_frames_and_in_range():
    c = _clip()
    c.frames[1] = c.frames[0]
    out = tf.photometric(c, np.random.default_rng(3), 0.4)
    assert out.frames.dtype == np.uint8 and np.array_equal(out.frames[0], out.frames[1])
    assert not np.array_equal(out.frames[0], c.frames[0])
