"""Streaming predictor: segment what sentences refer to in a video of any length with flat memory.

Frames are read and encoded a window at a time; every sentence is decoded against the same visual features
(each frame is encoded once, each sentence's text once per call). Full-resolution masks exist one frame at a
time: they go to the sinks (PNG, MP4, JSON writers) and only small numbers stay (area, score, RLE if asked).

Two things need the whole video before a mask can be final: the multi-query head picks the query with the
highest score summed over the video (R2-VOS eq. 12), and gating multiplies masks by 1(sigmoid(presence) > 0.5)
where presence is the video-level decision (mean over windows of the per-window probability). In those cases the
first pass spills every query's stride-4 logits (float16) to a temporary file on disk, and a second pass reads
the chosen query back, upsamples, gates and writes. Disk, not memory, grows with the length; frames are decoded
again only when a sink draws on them. A single-query model without gating streams in one pass.

A model with a moment head and a propagation path (TGL) also takes two passes: the predicted relevance picks,
per frame, the language path or propagation from the referred frames (rvos.infer.mdp; `mdp=False` keeps the
language path everywhere).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from rvos.data.types import Video
from rvos.errors import ConfigError, DatasetError
from rvos.infer.geometry import Geometry
from rvos.infer.mdp import MomentGuidedPaths
from rvos.infer.rle import encode_rle
from rvos.infer.spill import LogitSpill


@dataclass
class SegmentResult:
    """What segmenting one sentence over one video produced (masks themselves went to the sinks)."""

    sentence: str
    frame_names: list[str]
    areas: list[int]  # foreground pixels per frame at the original size
    scores: list[float]  # per frame, sigmoid of the chosen query's score
    query: int = 0  # the chosen query (multi-query head), 0 for a single-query head
    present: Optional[bool] = None  # video-level presence decision, None when the model has no presence head
    presence_score: Optional[float] = None  # mean over windows of sigmoid(presence)
    gated: bool = False  # masks were emptied because the object was judged absent
    relevance: Optional[list[float]] = None  # per frame, sigmoid of the model's "the sentence holds now" logit
    rles: Optional[list[dict]] = None  # per-frame COCO RLE when the predictor was asked to keep them
    paths: dict[str, Path] = field(default_factory=dict)  # what the sinks wrote for this sentence

    @property
    def spans(self) -> Optional[list[tuple[int, int]]]:
        """Half-open frame intervals where relevance > 0.5 (temporal grounding); None without relevance."""
        if self.relevance is None:
            return None
        out, start = [], None
        for i, r in enumerate(self.relevance + [0.0]):
            if r > 0.5 and start is None:
                start = i
            elif r <= 0.5 and start is not None:
                out.append((start, i))
                start = None
        return out


class FrameSink:
    """Receives each frame's masks (one bool [H, W] per sentence, in sentence order) in frame order."""

    needs_frames = False  # True when write() uses the RGB frame (the overlay video)

    def open(self, video: Video, sentences: list[str]) -> None:
        pass

    def attach(self, results: list[SegmentResult]) -> None:
        """The results being filled in (relevance grows window by window), for sinks that show per-frame state."""

    def write(self, index: int, frame: Optional[np.ndarray], masks: list[np.ndarray]) -> None:
        raise NotImplementedError

    def close(self, results: list[SegmentResult]) -> None:
        """Finish the files and record their paths in `results[k].paths`."""

    def abort(self) -> None:
        """Remove partial files after an error."""


def default_presence_threshold(model: torch.nn.Module) -> float:
    """The presence threshold a model was trained for: `model.ref_threshold` of the objects head, else 0.5."""
    if getattr(model, "video_level", False):
        return float(getattr(getattr(model, "config", None), "ref_threshold", 0.5))
    return 0.5


class Predictor:
    def __init__(self, model: torch.nn.Module, *, device: str | torch.device = "cpu", window: int = 8,
                 threshold: float = 0.5, size: Optional[int] = None, amp: bool = False,
                 encode_batch: Optional[int] = None, gate: Optional[bool] = None, keep_rle: bool = False,
                 pad_to: int = 32, progress: bool = False, presence_threshold: Optional[float] = None,
                 mdp: Optional[bool] = None):
        """`window`: frames decoded together (and read into memory at once). `encode_batch`: frames per
        encode_frames call; default 1 on CPU (a frame at a time is faster per frame there), the window on GPU.
        `gate`: empty the masks when the model's presence head says absent; None = on when it has one.
        `presence_threshold`: the object is judged present when sigmoid(A) >= this (eq. 12 uses 0.5); higher
        empties more absent-object masks (R up) at the cost of more wrongly emptied positives (J&F down).
        None: the model's own operating point (`model.ref_threshold` of an objects model, chosen on the validation
        split; 0.5 otherwise).
        `mdp`: TGL dual-path inference when the model has a moment head and a propagation path (None = on)."""
        if presence_threshold is None:
            presence_threshold = default_presence_threshold(model)
        if window < 1:
            raise ConfigError(f"window must be >= 1, got {window}")
        if not 0.0 < threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
        if not 0.0 < presence_threshold < 1.0:
            raise ConfigError(f"presence threshold must be in (0, 1), got {presence_threshold}")
        self.presence_threshold = presence_threshold
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.window, self.threshold, self.size, self.amp = window, threshold, size, amp
        self.encode_batch = encode_batch or (1 if self.device.type == "cpu" else window)
        self.gate, self.keep_rle, self.pad_to, self.progress = gate, keep_rle, pad_to, progress
        self.mdp = mdp

    # ----------------------------------------------------------------------------------------- model calls
    def _autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[T, 3, H, W] -> per level [T, C, h, w], `encode_batch` frames per call."""
        with self._autocast():
            chunks = [self.model.encode_frames(c) for c in x.split(self.encode_batch)]
        return chunks[0] if len(chunks) == 1 else [torch.cat(level) for level in zip(*chunks)]

    def decode(self, features: list[torch.Tensor], text, T: int):
        """-> logits [T, Q, h, w], scores [T, Q], presence logit (float) or None, relevance [T] or None, for
        one sentence."""
        with self._autocast():
            out = self.model.decode(features, text, 1, T)
        presence = None if out.presence is None else float(out.presence.reshape(-1)[0])
        relevance = None if out.relevance is None else out.relevance[0].float()
        return out.mask_logits[0].float(), out.scores[0].float(), presence, relevance

    # ---------------------------------------------------------------------------------------------- segment
    @torch.inference_mode()
    def segment(self, video: Video, sentences: Sequence[str], sinks: Sequence[FrameSink] = ()) -> list[SegmentResult]:
        sentences = check_sentences(sentences)
        n = len(video)
        if n == 0:
            raise DatasetError(f"video {video.video_id!r} has no frames")
        geo = Geometry.create(video.height, video.width, self.size, self.pad_to)
        texts = [self.model.encode_text([s]) for s in sentences]  # once per sentence
        results = [SegmentResult(s, list(video.frame_names), [], []) for s in sentences]
        keep = [[] if self.keep_rle else None for _ in sentences]
        for sink in sinks:
            sink.open(video, sentences)
            sink.attach(results)
        spill: Optional[LogitSpill] = None
        paths = MomentGuidedPaths.for_model(self.model, self.mdp, self.device)
        # Per sentence, per frame: the Q sigmoid scores as Python floats. Not numpy/torch: small long-lived
        # malloc'ed buffers between each window's large transient ones fragment the heap, and RSS then grows
        # ~100 KB a frame (measured); Python floats live in pymalloc's own arenas.
        score_hist: list[list[list[float]]] = [[] for _ in sentences]
        presence = [[] for _ in sentences]  # per sentence: (probability, frames) per window
        try:
            if getattr(self.model, "video_level", False):  # objects head: decided over whole tracks
                from rvos.infer.track_predictor import segment_tracks

                spill = LogitSpill(1)
                segment_tracks(self, video, sentences, results, keep, sinks, spill,
                               lambda it: _progress(it, self.progress, math.ceil(n / self.window), video.video_id))
                for k, r in enumerate(results):
                    r.rles = keep[k]
                for sink in sinks:
                    sink.close(results)
                return results
            for start in _progress(range(0, n, self.window), self.progress, math.ceil(n / self.window), video.video_id):
                idx = list(range(start, min(n, start + self.window)))
                frames = [video.frame(i) for i in idx]
                feats = self.encode(geo.to_input(frames).to(self.device))
                if paths is not None:
                    paths.observe(feats)
                decoded = [self.decode(feats, text, len(idx)) for text in texts]
                for k, (_, scores, pres, rel) in enumerate(decoded):
                    score_hist[k] += scores.sigmoid().tolist()
                    if rel is not None:
                        results[k].relevance = results[k].relevance or []
                        results[k].relevance += rel.sigmoid().tolist()
                    if pres is not None:
                        presence[k].append((1.0 / (1.0 + math.exp(-pres)), len(idx)))
                if spill is None and start == 0:
                    q, has_presence = decoded[0][0].shape[1], decoded[0][2] is not None
                    two_pass = q > 1 or (has_presence and self.gate is not False) or paths is not None
                    spill = LogitSpill(len(sentences)) if two_pass else None
                if spill is not None:
                    for k, (logits, *_) in enumerate(decoded):
                        spill.append(k, logits)
                else:  # single query, no gating: final now
                    self._emit(geo, idx, frames, [d[0][:, 0] for d in decoded], results, keep, sinks)
            chosen = [int(np.argmax(np.sum(h, axis=0))) for h in score_hist]  # eq. 12: summed over the video
            for k, r in enumerate(results):
                r.query = chosen[k]
                r.scores = [float(s[chosen[k]]) for s in score_hist[k]]
                if presence[k]:
                    r.presence_score = sum(p * t for p, t in presence[k]) / sum(t for _, t in presence[k])
                    r.present = r.presence_score >= self.presence_threshold
                    r.gated = bool(spill is not None and self.gate is not False and not r.present)
            if spill is not None:
                self._second_pass(video, geo, spill, results, keep, sinks, paths)
            for k, r in enumerate(results):
                r.rles = keep[k]
            for sink in sinks:
                sink.close(results)
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        finally:
            if spill is not None:
                spill.cleanup()
            if paths is not None:
                paths.cleanup()
        return results

    def _second_pass(self, video, geo, spill, results, keep, sinks, paths=None) -> None:
        """Read the chosen query's logits back a window at a time; route (MDP); gate; upsample; write."""
        n, read_frames = len(video), any(s.needs_frames for s in sinks)
        for start in range(0, n, self.window):
            idx = list(range(start, min(n, start + self.window)))
            frames = [video.frame(i) for i in idx] if read_frames else [None] * len(idx)
            logits = []
            for k, r in enumerate(results):
                lo = spill.read(k, start, len(idx), r.query).to(self.device)  # [T, h, w]
                if paths is not None and not r.gated:
                    lo = paths.route(k, start, lo, r.relevance, lambda t, k=k, q=r.query: spill.read(k, t, 1, q)[0])
                logits.append(torch.full_like(lo, -1e4) if r.gated else lo)
            self._emit(geo, idx, frames, logits, results, keep, sinks)

    def _emit(self, geo, idx, frames, logits, results, keep, sinks) -> None:
        """Per frame: full-size masks of every sentence -> sinks; areas (and RLEs) kept."""
        # sigmoid(x) > threshold  <=>  x > logit(threshold): no sigmoid over the full-size frame
        cut = math.log(self.threshold / (1.0 - self.threshold))
        for t, i in enumerate(idx):
            masks = [(geo.upsample(lo[t: t + 1]) > cut)[0].cpu().numpy() for lo in logits]
            for k, m in enumerate(masks):
                results[k].areas.append(int(m.sum()))
                if keep[k] is not None:
                    keep[k].append(encode_rle(m))
            for sink in sinks:
                sink.write(i, frames[t], masks)


def check_sentences(sentences: Sequence[str]) -> list[str]:
    """Sentences as a list of non-empty stripped strings; ConfigError otherwise."""
    if isinstance(sentences, str):
        sentences = [sentences]
    sentences = list(sentences)
    if not sentences:
        raise ConfigError("no sentence given: pass at least one referring sentence (--text \"the red car\")")
    out = []
    for k, s in enumerate(sentences):
        if not isinstance(s, str) or not s.strip():
            raise ConfigError(f"sentence {k + 1} is empty: give a referring sentence such as \"the dog on the left\"")
        out.append(" ".join(s.split()))
    return out


def _progress(it, enabled: bool, total: int, name: str):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=f"segment {name}", unit="window")
