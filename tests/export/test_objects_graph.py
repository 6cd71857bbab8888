"""The objects graph's inference form (export/objects_graph.py) computes ObjectDecoder.forward's function."""
from __future__ import annotations

import math

import pytest
import torch

from rvos.export.objects_graph import ObjectsGraph
from rvos.models.objects import ObjectDecoder, sine_positions, sine_tables


class _Model(torch.nn.Module):
    def __init__(self, objects):
        super().__init__()
        self.objects = objects


def _features(n, h, w, channels, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, h // s, w // s, generator=g) for c, s in zip(channels, (4, 8, 16, 32))]


@pytest.mark.parametrize("size", [(64, 96), (96, 64), (32, 160)])
def test_graph_matches_decoder(size):
    torch.manual_seed(0)
    channels = (24, 40, 112, 320)  # EfficientNet-Lite0's C2..C5
    dec = ObjectDecoder(channels, dim=32, num_queries=5, num_layers=4, num_heads=4, fpn_dims=(24, 16, 8),
                        mask_dim=8).eval()
    feats = _features(2, *size, channels, seed=1)
    with torch.no_grad():
        ref = dec(feats)
        embed, logits, masks = ObjectsGraph(_Model(dec))(*feats)
    assert embed.shape == ref.embed.shape and masks.shape == ref.masks.shape == (2, 5, size[0] // 4, size[1] // 4)
    # the masked attention must be exercised: masks of both signs
    assert (ref.masks > 0).float().mean().item() not in (0.0, 1.0)
    torch.testing.assert_close(embed, ref.embed, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, ref.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(masks, ref.masks, atol=1e-4, rtol=1e-4)


def test_blocked_is_one_mask_for_all_heads_and_never_empty():
    torch.manual_seed(0)
    dec = ObjectDecoder((8, 8, 8, 8), dim=16, num_queries=3, num_layers=1, num_heads=2, fpn_dims=(8, 8, 8),
                        mask_dim=4).eval()
    graph = ObjectsGraph(_Model(dec))
    q = torch.randn(1, 3, 16)
    x = torch.randn(1, 8, 4, 5)
    with torch.no_grad():
        dec.pixel.out.bias.fill_(-1e3)  # every mask off: no cell blocked (an empty mask attends everywhere)
        assert not graph.blocked(q, x).any()
        dec.pixel.out.bias.fill_(0.0)
        block = graph.blocked(q, x)
        _, wm, bm = graph.mask_weights(q)
        mask = torch.einsum("nqc,nchw->nqhw", wm, x).flatten(2) + bm[..., None]
    assert block.shape == (1, 1, 3, 20)
    expect = mask < 0
    expect &= ~expect.all(-1, keepdim=True)
    assert torch.equal(block[:, 0], expect)


def test_sine_tables_layout():
    cols, rows = sine_tables(2, 3, 8, "cpu")
    assert cols.shape == (3, 4) and rows.shape == (2, 4)
    # column j = 2 has x = 2.5 / 3; frequencies pi and 2 pi
    x = 2.5 / 3
    expect = torch.tensor([math.sin(math.pi * x), math.sin(2 * math.pi * x), math.cos(math.pi * x),
                           math.cos(2 * math.pi * x)])
    torch.testing.assert_close(cols[2], expect)
    pos = sine_positions(2, 3, 8, "cpu")
    assert pos.shape == (6, 8)
    # cell (row 1, column 2) is index 1 * 3 + 2: its x half is column 2's, its y half row 1's (y = 1.5 / 2)
    torch.testing.assert_close(pos[5, :4], expect)
    y = 0.75
    torch.testing.assert_close(pos[5, 4:], torch.tensor([math.sin(math.pi * y), math.sin(2 * math.pi * y),
                                                         math.cos(math.pi * y), math.cos(2 * math.pi * y)]))
