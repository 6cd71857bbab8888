"""MDP's language-agnostic path (models/propagation.py) on hand-built inputs: a mask read from the memory of one
frame follows a shifted pattern into the next; the module's read and decode; which frames are memory."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rvos.models.propagation import MaskPropagation, PropFeatures, memory_read, nearest_memory, spatial_prior


def square(h, w, y0, y1, x0, x1) -> torch.Tensor:
    m = torch.zeros(h, w)
    m[y0:y1, x0:x1] = 1
    return m


def test_memory_read_moves_the_mask_with_a_shifted_pattern():
    torch.manual_seed(0)
    k, h, w = 16, 8, 10
    f0 = F.normalize(torch.randn(k, h, w), dim=0)
    f1 = torch.roll(f0, shifts=2, dims=2)  # the pattern moves 2 cells right (wrapping round)
    m0 = square(h, w, 2, 5, 1, 4)
    read = memory_read(f1.reshape(1, k, -1), f0.reshape(1, k, -1), m0.reshape(1, 1, -1), temperature=0.01)
    moved = read.reshape(h, w) > 0.5
    assert torch.equal(moved, torch.roll(m0, 2, dims=1).bool())
    assert not torch.equal(moved, m0.bool())
    # a value is an average of memory values: a constant memory reads back as that constant
    const = memory_read(f1.reshape(1, k, -1), f0.reshape(1, k, -1), torch.full((1, 1, h * w), 0.3), 0.01)
    assert torch.allclose(const, torch.full_like(const, 0.3))
    # -inf in the bias removes memory cells: with only the first row left, every query reads a first-row value
    bias = torch.full((1, h * w, h * w), float("-inf"))
    bias[:, :w] = 0.0
    rows = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, -1)  # value = cell index
    out = memory_read(f1.reshape(1, k, -1), f0.reshape(1, k, -1), rows, 0.01, bias)
    assert (out < w).all()


def test_spatial_prior_values():
    bias = spatial_prior(1, 3, torch.tensor([[1.0]]), sigma=1.0)  # cells (0,0), (1,0), (2,0); sigma_dt = 2
    assert bias.shape == (1, 3, 3)
    assert torch.allclose(bias[0], -torch.tensor([[0.0, 1, 4], [1, 0, 1], [4, 1, 0]]) / 8.0)


def one_hot_features(h: int, w: int, shift: int) -> torch.Tensor:
    """[1, h*w, h, w]: a distinct one-hot code at every cell, rolled `shift` cells to the right."""
    codes = torch.eye(h * w).reshape(h * w, h, w)
    return torch.roll(codes, shifts=shift, dims=2)[None]


def test_module_propagates_the_mask_along_a_shifted_pattern():
    torch.manual_seed(0)
    h, w, dim = 6, 8, 48  # stride-8 grid; the codes fill all 48 channels
    prop = MaskPropagation((4, 4, 4), dim=dim, key_dim=dim, value_dim=4, fine_dim=2, sigma=3.0, temperature=0.05)
    with torch.no_grad():  # hand-built weights: keys are the embedding itself
        prop.key.weight.copy_(torch.eye(dim)[:, :, None, None])
        prop.key.bias.zero_()
    f0 = PropFeatures(one_hot_features(h, w, 0), torch.zeros(1, 2, 2 * h, 2 * w))
    f1 = PropFeatures(one_hot_features(h, w, 2), torch.zeros(1, 2, 2 * h, 2 * w))
    m0 = square(2 * h, 2 * w, 4, 8, 2, 8)  # stride-4 mask of frame 0
    keys, values = prop.encode_memory(f0, m0[None])
    assert torch.equal(values[0, -1].reshape(h, w), F.avg_pool2d(m0[None, None], 2)[0, 0])  # the mask channel
    read = prop.read(f1, keys[:, None], values[:, None], torch.tensor([[1.0]]))  # [1, V+1, h, w]
    shifted = torch.roll(F.avg_pool2d(m0[None, None], 2)[0, 0], 2, dims=1)
    assert torch.allclose(read[0, -1], shifted, atol=1e-3)
    logits = prop.decode(read, f1)  # refinement starts at zero: the propagated mask itself
    assert logits.shape == (1, 2 * h, 2 * w)
    want = torch.roll(m0, 4, dims=1).bool()  # 2 cells = 4 pixels at stride 4
    got = logits[0] > 0
    iou = lambda a, b: float((a & b).sum() / (a | b).sum())  # noqa: E731
    assert iou(got, want) > 0.95 and iou(got, m0.bool()) < 0.35
    # a padding slot (valid False) is never read: memory of frame 0 plus a slot holding an all-ones mask
    k1, v1 = prop.encode_memory(f1, torch.ones(1, 2 * h, 2 * w))
    both_k, both_v = torch.stack([keys[0], k1[0]])[None], torch.stack([values[0], v1[0]])[None]
    masked = prop.read(f1, both_k, both_v, torch.tensor([[1.0, 0.0]]), torch.tensor([[True, False]]))
    assert torch.allclose(masked, read, atol=1e-5)


def test_decode_at_init_is_the_logit_of_the_read_mask():
    prop = MaskPropagation((4, 6, 8), dim=16, key_dim=8, value_dim=4, fine_dim=2)
    readout = torch.full((2, 5, 3, 4), 0.5)
    readout[:, -1] = 0.8
    q = PropFeatures(torch.randn(2, 16, 3, 4), torch.randn(2, 2, 6, 8))
    out = prop.decode(readout, q)
    assert torch.allclose(out, torch.full((2, 6, 8), math.log(0.8 / 0.2)), atol=1e-5)
    feats = prop.embed([torch.randn(2, 4, 8, 12), torch.randn(2, 6, 4, 6), torch.randn(2, 8, 2, 3)])
    assert feats.embed.shape == (2, 16, 4, 6) and feats.fine.shape == (2, 2, 8, 12)


def test_nearest_memory():
    ref = torch.tensor([[False, True, True, False, True], [True, False, False, False, False]])
    idx, valid = nearest_memory(ref, 2)
    assert idx[0, 0].tolist() == [1, 2] and idx[0, 1].tolist() == [2, 4] and idx[0, 3].tolist() == [2, 4]
    assert valid[0].all()
    assert idx[1, 3, 0] == 0 and valid[1, 3].tolist() == [True, False]  # one reference frame: one slot
    assert valid[1, 0].tolist() == [False, False]  # the reference itself has no other memory
