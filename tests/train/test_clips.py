"""ClipDataset items, union targets, negatives, spans, padding, reproducibility, and collate -> Batch."""
import numpy as np
import pytest
import torch

from rvos.data.clips import ClipConfig, ClipDataset, collate, sample_frames
from rvos.data.types import FrameTarget, TargetKind
from rvos.errors import ConfigError, DatasetError
from train_helpers import rect, square_record


def plain(**kw) -> ClipConfig:
    return ClipConfig(**{"num_frames": 3, "size": None, "augment": False, "photometric": 0.0, **kw})


def test_items_include_negatives_unless_disabled():
    recs = [square_record("a"), square_record("b")]
    assert len(ClipDataset(recs, plain())) == 8
    assert len(ClipDataset(recs, plain(negatives=False))) == 6


def test_union_target_spans_and_negative():
    ds = ClipDataset([square_record("a", n=6)], plain(sampling="random"))
    both = ds[2]  # "both shapes", spans [(0, 2)]
    idx = both.frame_index.numpy()
    assert list(idx) == sorted(idx) and len(set(idx)) == 3
    for j, i in enumerate(idx):
        expected = rect(32, 48, 8, 18, 2 + 3 * i, 12 + 3 * i) | rect(32, 48, 22, 28, 30, 44)
        assert torch.equal(both.masks[j].bool(), torch.from_numpy(expected))
        assert both.boxes[j].tolist() == pytest.approx([min(2 + 3 * i, 30) / 48, 8 / 32, max(12 + 3 * i, 44) / 48, 28 / 32])
    assert both.in_span.tolist() == [i < 2 for i in idx]
    assert (both.target_kind == TargetKind.MASK).all() and both.present.all() and both.positive
    neg = ds[3]
    assert not neg.positive and neg.masks.sum() == 0 and not neg.present.any()
    assert (neg.target_kind == TargetKind.MASK).all()  # annotated frames: the referred nothing is visibly absent


def test_box_and_none_frames_in_union():
    rec = square_record("a", n=4)
    bar = rec.tracks[2].targets
    bar[0] = FrameTarget(TargetKind.BOX, box=(30.0, 22.0, 44.0, 28.0))
    bar[1] = FrameTarget(TargetKind.NONE)
    s = ClipDataset([rec], plain(num_frames=4))[2]
    assert s.target_kind.tolist() == [TargetKind.BOX, TargetKind.NONE, TargetKind.MASK, TargetKind.MASK]
    assert s.boxes[0].tolist() == pytest.approx([2 / 48, 8 / 32, 44 / 48, 28 / 32])  # union of mask box and box
    assert s.present.tolist() == [True, False, True, True]


def test_short_video_pads_with_invalid_frames():
    s = ClipDataset([square_record("a", n=2)], plain(num_frames=4))[0]
    assert s.frame_index.tolist() == [0, 1, 1, 1] and s.valid.tolist() == [True, True, False, False]


def test_reproducible_per_epoch_and_index():
    cfg = ClipConfig(num_frames=3, size=(24, 40), resize_shorter=[28, 36], crop_min_scale=0.6)
    a, b = ClipDataset([square_record("a", n=8)], cfg), ClipDataset([square_record("a", n=8)], cfg)
    assert torch.equal(a[0].frames, b[0].frames) and a[0].text == b[0].text
    draws = set()
    for e in range(6):
        a.set_epoch(e)
        s = a[0]
        draws.add((tuple(s.frame_index.tolist()), s.text))
        assert s.frames.shape == (3, 3, 24, 40) and s.masks.shape == (3, 24, 40)
        assert s.present.all()  # the crop keeps the square visible
    assert len(draws) > 1
    assert {t for _, t in draws} == {"the red square on the left", "the red square on the right"}


def test_flip_swaps_sentence_and_mirrors_mask():
    cfg = plain(augment=True, flip_prob=1.0)
    s, ref = ClipDataset([square_record("a")], cfg)[0], ClipDataset([square_record("a")], plain())[0]
    assert s.text == "the red square on the right" and s.flipped
    assert torch.equal(s.masks, ref.masks.flip(-1)) and torch.equal(s.frames, ref.frames.flip(-1))


def test_collate_builds_batch():
    ds = ClipDataset([square_record("a"), square_record("b")], plain(size=(16, 24)))
    b = collate([ds[i] for i in range(4)])
    assert b.frames.shape == (4, 3, 3, 16, 24) and b.masks.shape == (4, 3, 16, 24) and b.boxes.shape == (4, 3, 4)
    assert b.positive.tolist() == [True, True, True, False] and b.exp_ids == ["0", "1", "2", "3"]
    assert b.frames.dtype == torch.float32 and 0 <= b.frames.min() and b.frames.max() <= 1
    assert b.target_kind.dtype == torch.long and b.valid.dtype == torch.bool and b.features is None


def test_errors():
    rec = square_record("a")
    rec.expressions[0].obj_ids = [9]
    with pytest.raises(DatasetError, match="object 9"):
        ClipDataset([rec], plain())[0]
    with pytest.raises(ConfigError, match="sampling"):
        ClipDataset([rec], plain(sampling="every"))
    ds = ClipDataset([square_record("a", h=32), square_record("b", h=40)], plain())
    with pytest.raises(ConfigError, match="clip.size"):
        collate([ds[0], ds[4]])


def test_sample_frames_window():
    idx, valid = sample_frames(10, 4, "window", np.random.default_rng(0))
    assert np.array_equal(np.diff(idx), [1, 1, 1]) and valid.all()


def test_include_frame_moves_a_window_or_swaps_a_random_frame():
    import numpy as np

    from rvos.data.clips import include_frame

    rng = np.random.default_rng(0)
    idx = np.arange(10, 15)
    assert include_frame(idx, [12], 24, "window", rng) is idx  # already inside: unchanged
    assert include_frame(idx, [], 24, "window", rng) is idx  # no mask frame: unchanged
    for _ in range(20):
        w = include_frame(idx, [0], 24, "window", rng)
        assert w.tolist() == [0, 1, 2, 3, 4]  # clamped at the start
        w = include_frame(idx, [23], 24, "window", rng)
        assert w.tolist() == [19, 20, 21, 22, 23]  # clamped at the end
        w = include_frame(idx, [3], 24, "window", rng)
        assert 3 in w.tolist() and np.all(np.diff(w) == 1) and len(w) == 5
        r = include_frame(np.array([2, 5, 9, 14, 20]), [7], 24, "random", rng)
        assert 7 in r.tolist() and len(set(r.tolist()) & {2, 5, 9, 14, 20}) == 4 and np.all(np.diff(r) > 0)


def test_keep_mask_frame_puts_the_mask_frame_in_every_clip():
    from rvos.data.regimes import apply_regime
    from train_helpers import tiny_records

    records = apply_regime(tiny_records(2, n=12), "mask_box", seed=0)
    ds = ClipDataset(records, ClipConfig(num_frames=3, size=(32, 48), keep_mask_frame=True, negatives=False))
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            kinds = ds[i].target_kind.tolist()
            assert int(TargetKind.MASK) in kinds
