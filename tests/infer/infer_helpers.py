"""A stand-in model with the real model's inference methods (encode_frames, encode_text, decode), whose masks
are known by hand: the foreground is where the stride-4 mean brightness exceeds 0.5 (inverted for sentences
containing "dark"). Videos: a bright 12x12 square moving over a dark background whose grey level rises."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rvos.data.frames import ArrayFrames
from rvos.data.types import Video
from rvos.models.output import RVOSOutput

H, W, N = 45, 61, 6  # odd sizes on purpose: padding and cropping must line up


def square_at(t: int) -> tuple[int, int]:
    """Top-left (row, col) of the square in frame t."""
    return 8 + 2 * t, 10 + 5 * t


def expected_mask(t: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), bool)
    r, c = square_at(t)
    m[r: r + 12, c: c + 12] = True
    return m


def close_to(mask: np.ndarray, t: int) -> bool:
    """The mask covers the square shrunk by 2 px and stays inside it grown by 4 px (one stride-4 cell)."""
    from scipy import ndimage

    e = expected_mask(t, *mask.shape)
    inner, outer = ndimage.binary_erosion(e, iterations=2), ndimage.binary_dilation(e, iterations=4)
    return bool(mask[inner].all() and not mask[~outer].any())


def make_frames(n: int = N, h: int = H, w: int = W) -> list[np.ndarray]:
    frames = []
    for t in range(n):
        f = np.full((h, w, 3), int(255 * 0.04 * (t % 6)), np.uint8)  # background grey 0 .. 0.2
        f[expected_mask(t % 6, h, w)] = 255
        frames.append(f)
    return frames


class ListFrames(ArrayFrames):
    """In-memory frames that count their reads."""

    def __init__(self, frames):
        super().__init__(frames)
        self.reads = 0

    def read(self, index):
        self.reads += 1
        return super().read(index)


def make_video(n: int = N, h: int = H, w: int = W) -> Video:
    return Video("clip", ListFrames(make_frames(n, h, w)), h, w, fps=10.0)


class TinyModel(nn.Module):
    """queries=Q: query q's mask logits are the base logits minus 100*q' for q' != `good_query` (so only one
    query has a mask); query scores: query 0 has 100*(frame mean - 0.1) (frames 3-5 above 0), the others a
    constant 1.0; relevance (when asked for) = query 0's score."""

    def __init__(self, queries: int = 1, presence: float | None = None, good_query: int = 0, relevance: bool = False):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(20.0))
        self.queries, self.presence, self.good_query, self.relevance = queries, presence, good_query, relevance
        self.encode_calls = self.text_calls = self.decode_calls = 0

    def encode_frames(self, frames):  # [N, 3, H, W] in [0, 1]
        self.encode_calls += 1
        g = frames.mean(1, keepdim=True)  # [N, 1, H, W]
        return [F.avg_pool2d(g, s) for s in (4, 8, 16, 32)]

    def encode_text(self, sentences):
        self.text_calls += 1
        return torch.tensor([-1.0 if "dark" in s else 1.0 for s in sentences])  # [B]

    def decode(self, features, text, B, T):
        self.decode_calls += 1
        c2, c5 = features[0], features[3]  # [B*T, 1, H/4, W/4], [B*T, 1, H/32, W/32]
        sign = text.repeat_interleave(T).view(B * T, 1, 1, 1)
        base = self.gain * (c2 - 0.5) * sign  # [B*T, 1, h, w]
        shift = torch.tensor([0.0 if q == self.good_query else -100.0 for q in range(self.queries)])
        logits = base + shift.view(1, -1, 1, 1)  # [B*T, Q, h, w]
        mean = c5.flatten(1).mean(1)  # [B*T]
        scores = torch.ones(B * T, self.queries)
        scores[:, 0] = 100 * (mean - 0.1)
        h, w = logits.shape[-2:]
        presence = None if self.presence is None else torch.full((B,), float(self.presence))
        return RVOSOutput(mask_logits=logits.view(B, T, self.queries, h, w), scores=scores.view(B, T, self.queries),
                          filters=torch.zeros(B, T, self.queries, 1), mask_features=c2.view(B, T, 1, h, w),
                          sentence=text.view(B, 1), presence=presence,
                          relevance=scores[:, 0].view(B, T) if self.relevance else None)
