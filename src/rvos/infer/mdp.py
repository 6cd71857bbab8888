"""Moment-guided dual-path propagation (MDP, TGL paper 003) at inference: the predicted relevance picks the path
of every frame.

For a model with a moment head and a propagation path (`model.moment`, `model.propagation`), per sentence:
- referred frames R = {t : sigmoid(relevance_t) > 0.5} (the predicted spans, `SegmentResult.spans`): the language
  path's mask (the head's, as without MDP);
- every other frame t: the mask propagated, without text, from the memory of the `propagation.memory` frames of R
  nearest to t in time, before or after it (each memory frame: its visual features and its language-path mask
  probability). Propagated frames are not written to memory (CODE-NOTES: as TGL's SAM2-style memory);
- no referred frame at all: the sentence refers to nothing in the video, every mask is empty (MeViS no-target).

The predictor streams the video once (window by window) and then writes every mask in a second pass, as it does
for multi-query heads and gating (rvos.infer.predictor). Here the first pass also spills each frame's propagation
features (language-free, so shared by all sentences; float16, stride 8 and 4) to a temporary file, so the second
pass can propagate any frame from any referred frame with flat memory: disk grows with the video's length, memory
holds one window plus a small cache of memory frames' keys and values.
"""
from __future__ import annotations

import bisect
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from rvos.models.propagation import PropFeatures

THRESHOLD = 0.5  # a frame is referred when sigmoid(relevance) > this (SegmentResult.spans uses the same)


class FeatureSpill:
    """Per-frame PropFeatures appended in frame order to one float16 file; read back by frame index."""

    def __init__(self, directory: Optional[str] = None):
        self.dir = Path(tempfile.mkdtemp(prefix="rvos-mdp-", dir=directory))
        self.file = open(self.dir / "features.f16", "w+b")
        self.shapes: Optional[tuple[tuple[int, ...], tuple[int, ...]]] = None
        self.count = 0

    def append(self, feats: PropFeatures) -> None:
        shapes = (tuple(feats.embed.shape[1:]), tuple(feats.fine.shape[1:]))
        if self.shapes is None:
            self.shapes = shapes
        elif shapes != self.shapes:
            raise ValueError(f"propagation feature shapes changed within a video: {shapes} vs {self.shapes}")
        e = feats.embed.detach().to("cpu", torch.float16).flatten(1)
        f = feats.fine.detach().to("cpu", torch.float16).flatten(1)
        self.file.seek(0, 2)
        self.file.write(torch.cat([e, f], 1).numpy().tobytes())
        self.count += feats.embed.shape[0]

    def read(self, frames: Sequence[int], device) -> PropFeatures:
        (es, fs) = self.shapes
        ne, nf = int(np.prod(es)), int(np.prod(fs))
        rows = np.empty((len(frames), ne + nf), np.float16)
        for j, t in enumerate(frames):
            self.file.seek(int(t) * (ne + nf) * 2)
            rows[j] = np.frombuffer(self.file.read((ne + nf) * 2), dtype=np.float16)
        x = torch.from_numpy(rows.astype(np.float32)).to(device)
        return PropFeatures(x[:, :ne].reshape(-1, *es), x[:, ne:].reshape(-1, *fs))

    def cleanup(self) -> None:
        self.file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def nearest(referred: list[int], t: int, count: int) -> list[int]:
    """The `count` frames of sorted `referred` nearest to t (ties: the earlier), in time order."""
    i = bisect.bisect_left(referred, t)
    lo, hi, out = i - 1, i, []
    while len(out) < count and (lo >= 0 or hi < len(referred)):
        if hi >= len(referred) or (lo >= 0 and t - referred[lo] <= referred[hi] - t):
            out.append(referred[lo])
            lo -= 1
        else:
            out.append(referred[hi])
            hi += 1
    return sorted(out)


class MomentGuidedPaths:
    """Routes each frame of each sentence to the language path or to propagation (see the module docstring)."""

    def __init__(self, propagation, device, cache_frames: int = 64):
        self.prop, self.device = propagation, torch.device(device)
        self.spill = FeatureSpill()
        self.cache: OrderedDict = OrderedDict()  # (sentence, frame) -> (keys [K, S], values [V+1, S])
        self.cache_frames = cache_frames
        self.referred: dict[int, list[int]] = {}

    @classmethod
    def for_model(cls, model, enabled: Optional[bool], device) -> Optional["MomentGuidedPaths"]:
        """An instance when the model has both parts and `enabled` is not False; None otherwise."""
        if enabled is False or getattr(model, "propagation", None) is None or getattr(model, "moment", None) is None:
            return None
        return cls(model.propagation, device)

    def observe(self, features: list[torch.Tensor]) -> None:
        """One window's visual features (C2..C5, [T, C_l, H_l, W_l]), in frame order."""
        self.spill.append(self.prop.embed([f.float() for f in features[:3]]))

    def route(self, k: int, start: int, logits: torch.Tensor, relevance: Optional[list[float]],
              language: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """Final logits [T, h, w] of frames start.. of sentence k from its language logits (this window; `language(t)`
        reads frame t's [h, w] for the memory) and its relevance probabilities over the whole video."""
        if relevance is None:
            return logits
        if k not in self.referred:
            self.referred[k] = [t for t, r in enumerate(relevance) if r > THRESHOLD]
        referred = self.referred[k]
        if not referred:  # the sentence holds nowhere: it refers to nothing in this video
            return torch.full_like(logits, -1e4)
        frames = [start + j for j in range(logits.shape[0])]
        other = [j for j, t in enumerate(frames) if relevance[t] <= THRESHOLD]
        if not other:
            return logits
        m = min(self.prop.memory, len(referred))
        mem = [nearest(referred, frames[j], m) for j in other]
        keys = torch.stack([torch.stack([self._memory(k, f, language)[0] for f in row]) for row in mem])  # [N, M, K, S]
        values = torch.stack([torch.stack([self._memory(k, f, language)[1] for f in row]) for row in mem])
        dt = torch.tensor([[frames[j] - f for f in row] for j, row in zip(other, mem)], device=self.device)
        query = self.spill.read([frames[j] for j in other], self.device)
        prop = self.prop.propagate(query, keys, values, dt)  # [N, h4, w4]
        if prop.shape[-2:] != logits.shape[-2:]:
            prop = torch.nn.functional.interpolate(prop[:, None], size=logits.shape[-2:], mode="bilinear",
                                                   align_corners=False)[:, 0]
        out = logits.clone()
        out[other] = prop.to(out.dtype)
        return out

    def _memory(self, k: int, t: int, language: Callable[[int], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        key = (k, t)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache.move_to_end(key)
            return hit
        feats = self.spill.read([t], self.device)
        prob = language(t).to(self.device).float().sigmoid()[None]  # [1, h, w]
        if prob.shape[-2:] != feats.fine.shape[-2:]:
            prob = torch.nn.functional.interpolate(prob[:, None], size=feats.fine.shape[-2:], mode="bilinear",
                                                   align_corners=False)[:, 0]
        keys, values = self.prop.encode_memory(feats, prob)
        hit = (keys[0], values[0])
        self.cache[key] = hit
        if len(self.cache) > self.cache_frames:
            self.cache.popitem(last=False)
        return hit

    def cleanup(self) -> None:
        self.spill.cleanup()
