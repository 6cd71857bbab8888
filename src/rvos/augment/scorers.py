"""The similarity filter's scorers: how well each augmented positive fits the video (WSRVOS keeps c >= 0.8).

The paper scores (video, positive) with InternVideo2; none is installed here, so the scorer is pluggable:
- `text`: cosine of the all-MiniLM-L6-v2 sentence features of the positive and the original expression. It
  checks that a positive still says what the original says; it cannot see the video.
- `model`: a trained rvos model's video-level score of the positive on the video's frames: sigmoid of the
  presence logit for an R2-VOS model, otherwise the mean over frames of the best query's sigmoid score.
- `none`: every positive scores 1 (keeps all).
A scorer is any object with `name` and `score(record, expression, texts) -> list[float]`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np
import torch

from rvos.data import transforms as tf
from rvos.data.types import Expression, VideoRecord
from rvos.errors import ConfigError


class Scorer(Protocol):
    name: str

    def score(self, record: VideoRecord, exp: Expression, texts: Sequence[str]) -> list[float]: ...


class NoScorer:
    name = "none"

    def score(self, record: VideoRecord, exp: Expression, texts: Sequence[str]) -> list[float]:
        return [1.0 for _ in texts]


class TextSimilarityScorer:
    name = "text"

    def __init__(self, encoder=None):
        if encoder is None:
            from rvos.models.text import MiniLMEncoder

            encoder = MiniLMEncoder(frozen=True)
        self.encoder = encoder

    @torch.no_grad()
    def score(self, record: VideoRecord, exp: Expression, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        s = torch.nn.functional.normalize(self.encoder([exp.text, *texts]).sentence.float(), dim=-1)
        return [float(v) for v in s[1:] @ s[0]]


def sample_indices(n: int, k: int) -> list[int]:
    """k frame indices spread evenly over a video of n frames (all of them when n <= k)."""
    if n <= k:
        return list(range(n))
    return [int(round(x)) for x in np.linspace(0, n - 1, k)]


class ModelScorer:
    name = "model"

    def __init__(self, model, frames: int = 4, size: Optional[tuple[int, int]] = (192, 320), device: str = "cpu"):
        self.model, self.frames, self.size, self.device = model.eval().to(device), frames, size, device

    @classmethod
    def from_checkpoint(cls, path: str | Path, frames: int = 4, device: str = "cpu") -> "ModelScorer":
        from rvos.train.checkpoint import load_model_from_checkpoint

        model, cfg = load_model_from_checkpoint(path, map_location=device)
        size = tuple(cfg.data.clip.size) if getattr(cfg.data.clip, "size", None) else None
        return cls(model, frames, size, device)

    def clip(self, record: VideoRecord) -> torch.Tensor:
        idx = sample_indices(len(record.video), self.frames)
        frames = np.stack([record.video.frame(i) for i in idx])  # [T, H, W, 3]
        clip = tf.Clip(frames=frames, masks=np.zeros(frames.shape[:3], bool),
                       boxes=np.full((len(idx), 4), np.nan, np.float32), kinds=np.zeros(len(idx), np.int64), text="")
        if self.size is not None:
            clip = tf.resize(clip, *self.size)
        return torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float().div_(255.0)  # [T, 3, H, W]

    @torch.no_grad()
    def score(self, record: VideoRecord, exp: Expression, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        frames = self.clip(record).to(self.device)
        t = frames.shape[0]
        feats = self.model.encode_frames(frames)  # per level [T, C, h, w]
        rep = [f.repeat(len(texts), 1, 1, 1) for f in feats]  # [E*T, C, h, w], clip-major
        out = self.model.decode(rep, self.model.encode_text(list(texts)), len(texts), t)
        if out.presence is not None:
            return [float(v) for v in out.presence.sigmoid()]
        return [float(v) for v in out.scores.sigmoid().amax(-1).mean(-1)]  # [E]: best query, mean over frames


def build_scorer(name: str, checkpoint: Optional[str] = None, frames: int = 4) -> Scorer:
    if name == "none":
        return NoScorer()
    if name == "text":
        return TextSimilarityScorer()
    if name == "model":
        if not checkpoint:
            raise ConfigError("the model scorer needs --checkpoint (a trained rvos checkpoint)")
        return ModelScorer.from_checkpoint(checkpoint, frames)
    raise ConfigError(f"unknown scorer {name!r}; choose text, model or none")
