"""Stride-4 mask logits of every query, spilled to a temporary file per sentence so a second pass can read the
chosen query back without holding the video's masks in memory (see rvos.infer.predictor)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch


class LogitSpill:
    """Append [T, Q, h, w] logits frame by frame; read [T, h, w] of one query back. Stored as float16."""

    def __init__(self, n_sentences: int, directory: Optional[str] = None):
        self.dir = Path(tempfile.mkdtemp(prefix="rvos-spill-", dir=directory))
        self.files = [open(self.dir / f"{k}.f16", "w+b") for k in range(n_sentences)]
        self.shape: Optional[tuple[int, int, int]] = None  # (Q, h, w) of one frame

    def append(self, k: int, logits: torch.Tensor) -> None:
        q_h_w = tuple(logits.shape[1:])
        if self.shape is None:
            self.shape = q_h_w
        elif q_h_w != self.shape:
            raise ValueError(f"logit shape changed within a video: {q_h_w} vs {self.shape}")
        f = self.files[k]
        f.seek(0, 2)
        f.write(logits.detach().to("cpu", torch.float16).numpy().tobytes())

    def read(self, k: int, start: int, count: int, query: int) -> torch.Tensor:
        """Logits of `query` for frames start..start+count-1 -> float32 [count, h, w]."""
        q, h, w = self.shape
        f, plane = self.files[k], h * w
        out = np.empty((count, h, w), dtype=np.float16)
        for t in range(count):
            f.seek(((start + t) * q + query) * plane * 2)
            out[t] = np.frombuffer(f.read(plane * 2), dtype=np.float16).reshape(h, w)
        return torch.from_numpy(out.astype(np.float32))

    def read_all(self, k: int, start: int, count: int) -> torch.Tensor:
        """Every query's logits for frames start..start+count-1 -> float32 [count, Q, h, w]."""
        q, h, w = self.shape
        f = self.files[k]
        f.seek(start * q * h * w * 2)
        out = np.frombuffer(f.read(count * q * h * w * 2), dtype=np.float16).reshape(count, q, h, w)
        return torch.from_numpy(out.astype(np.float32))

    def cleanup(self) -> None:
        for f in self.files:
            f.close()
        shutil.rmtree(self.dir, ignore_errors=True)
