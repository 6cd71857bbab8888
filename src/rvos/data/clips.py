"""Clip sampling and the one collate that builds `Batch`.

`ClipDataset` has one item per (video, expression) pair. Positive expressions target the union of their objects;
negative ones (no object) are kept with an empty target and positive=False. Each item samples T frames (a random
window, or random sorted frames) and augments them with a generator seeded by (seed, epoch, index), so a run is
reproducible whatever the number of workers and can resume mid-epoch.

Per frame the union target is MASK when every referred object has a mask there, BOX when all are annotated and
at least one only with a box (the union box), NONE when any referred object is unannotated. A negative pair's
frame is annotated "empty" with the kind the video's tracks carry there (MASK if any track has a mask, else BOX,
else NONE), since the expression itself says nothing is referred.

Temporal grounding (TGL, paper 003; spans from rvos.data.spans, kept by the `spans` regime):
- `sampling="moment"` (moment-guided sampling): when the expression holds in part of the video, the window is
  placed across a boundary of its spans (a span start or end, chosen uniformly), at a uniform offset that keeps
  at least one frame on each side, so that every clip shows the referred moment and the rest together; when the
  spans are unknown or cover all or none of the video it is an ordinary random window.
- `oss=True` (object-level selective supervision): the target of a clip is the union of only the referred objects
  the expression refers to in at least one of the clip's frames (`spans.objects_in`); the others are background
  in that clip, as every unreferred object is. A clip that shows none of them has an empty target (the item stays
  positive: the expression does refer to something elsewhere in the video). With `instances`, `refers` marks
  the same objects (those referred within the clip).
`in_span` marks the frames where the sentence holds and `span_known` whether the expression's spans are annotated
(otherwise `in_span` is all True by convention).

With a feature cache (`features=`), the clip is only resized to the fixed training size and maybe flipped: random
resize, crop and photometric jitter are disabled, since cached features exist for exactly those two views.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Protocol, Sequence

import numpy as np
import torch

from rvos.data import transforms as tf
from rvos.data.batch import Batch
from rvos.data.spans import objects_in
from rvos.data.types import Expression, TargetKind, VideoRecord, box_from_mask
from rvos.errors import ConfigError, DatasetError


@dataclass
class ClipConfig:
    num_frames: int = 5  # T
    sampling: str = "window"  # "window": consecutive frames from a random start; "random": random sorted frames;
    # "moment": a window across a boundary of the expression's spans (TGL moment-guided sampling, see above)
    size: Optional[tuple[int, int]] = (192, 320)  # final (H, W) every clip is resized to; None keeps the size
    augment: bool = True  # False: no random transforms (validation)
    resize_shorter: list[int] = field(default_factory=list)  # random shorter side before the crop; [] = off
    crop_min_scale: float = 0.0  # random crop keeping the target, each side >= this fraction; 0 = off
    flip_prob: float = 0.5
    photometric: float = 0.2  # jitter strength; 0 = off
    negatives: bool = True  # keep negative (no-target) expressions as items
    keep_mask_frame: bool = False  # every clip holds one of the expression's mask frames, when it has any (weak regimes)
    oss: bool = False  # TGL object-level selective supervision: target = the objects referred within the clip
    instances: bool = False  # also carry every object's mask (Batch.instances), for object-centric models
    seed: int = 0

    def validate(self) -> None:
        if self.num_frames < 1:
            raise ConfigError(f"clip.num_frames must be >= 1, got {self.num_frames}")
        if self.sampling not in ("window", "random", "moment"):
            raise ConfigError(f"clip.sampling must be 'window', 'random' or 'moment', got {self.sampling!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ConfigError(f"clip.size must be (height, width) or null, got {self.size!r}")


class FeatureLookup(Protocol):
    def lookup(self, video_id: str, frames: Sequence[int], flipped: bool) -> list[torch.Tensor]: ...  # [T, C_l, H_l, W_l]


@dataclass
class ClipSample:
    """One item of ClipDataset; `collate` stacks B of them into a Batch."""

    frames: torch.Tensor  # float [T, 3, H, W] in [0, 1]
    target_kind: torch.Tensor  # long [T]
    masks: torch.Tensor  # float [T, H, W]
    boxes: torch.Tensor  # float [T, 4] normalised (x0, y0, x1, y1); 0 where no box
    present: torch.Tensor  # bool [T]
    valid: torch.Tensor  # bool [T]
    in_span: torch.Tensor  # bool [T]
    positive: bool
    text: str
    video_id: str
    exp_id: str
    frame_index: torch.Tensor  # long [T]
    flipped: bool = False
    features: Optional[list[torch.Tensor]] = None  # per level [T, C_l, H_l, W_l]
    span_known: bool = False  # the expression's spans are annotated (else in_span is all True)
    instances: Optional[torch.Tensor] = None  # long [T, H, W]: 0 = no object, k + 1 = the k-th of instance_ids
    instance_known: Optional[torch.Tensor] = None  # bool [T, K]: object k has a mask target in frame t
    refers: Optional[torch.Tensor] = None  # bool [K]: the sentence refers to object k
    instance_ids: Optional[list[int]] = None  # K object ids of the video, sorted
    positives: list[str] = field(default_factory=list)  # the expression's augmented positives (WSRVOS)
    negatives: list[str] = field(default_factory=list)  # its hard negatives
    others: list[str] = field(default_factory=list)  # expressions of the video referring to none of its objects


def sample_frames(n: int, t: int, mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices [t], valid [t]) for a video of n frames; short videos repeat their last frame, valid=False."""
    if n >= t:
        if mode == "window":
            start = int(rng.integers(n - t + 1))
            return np.arange(start, start + t), np.ones(t, bool)
        return np.sort(rng.choice(n, size=t, replace=False)), np.ones(t, bool)
    idx = np.concatenate([np.arange(n), np.full(t - n, n - 1)])
    return idx, np.arange(t) < n


def sample_moment_frames(n: int, t: int, spans: Optional[Sequence[tuple[int, int]]], rng: np.random.Generator
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Moment-guided window (see the module docstring): t consecutive frames of n that straddle a boundary of
    `spans`, so that the clip holds frames where the sentence holds and frames where it does not; an ordinary
    random window when there is no boundary inside the video or the video is shorter than t."""
    inside = np.zeros(n, bool)
    for s, e in spans or ():
        inside[max(0, s): min(n, e)] = True
    bounds = [b for b in range(1, n) if inside[b] != inside[b - 1]]  # frame b starts a new state
    if not bounds or n <= t or t < 2:
        return sample_frames(n, t, "window", rng)
    b = bounds[int(rng.integers(len(bounds)))]
    lo, hi = max(0, b - t + 1), min(b - 1, n - t)  # start in [b-t+1, b-1]: frames b-1 and b both in the window
    start = int(rng.integers(lo, hi + 1))
    return np.arange(start, start + t), np.ones(t, bool)


def mask_frames(rec: VideoRecord, exp: Expression) -> list[int]:
    """Frames where every object the expression refers to has a MASK target."""
    tracks = [rec.tracks[o] for o in exp.obj_ids if o in rec.tracks]
    if not tracks:
        return []
    return [i for i in range(len(rec.video)) if all(tr.targets[i].kind == TargetKind.MASK for tr in tracks)]


def include_frame(idx: np.ndarray, candidates: list[int], n: int, mode: str, rng: np.random.Generator) -> np.ndarray:
    """`idx` changed as little as needed to hold one of `candidates` (a random one) when it holds none: a window
    is moved so that the frame sits at a random position in it; random sampling swaps one frame for it."""
    if not candidates or any(int(i) in candidates for i in idx) or n < len(idx):
        return idx
    f, t = int(rng.choice(candidates)), len(idx)
    if mode == "window":
        start = min(max(f - int(rng.integers(t)), 0), n - t)
        return np.arange(start, start + t)
    out = idx.copy()
    out[int(rng.integers(t))] = f
    return np.sort(out)


class ClipDataset(torch.utils.data.Dataset):
    def __init__(self, records: Sequence[VideoRecord], cfg: ClipConfig, features: Optional[FeatureLookup] = None):
        cfg.validate()
        if features is not None and cfg.size is None:
            raise ConfigError("a feature cache needs a fixed training size (clip.size)")
        self.records, self.cfg, self.features, self.epoch = list(records), cfg, features, 0
        self.items = [(r, e) for r, rec in enumerate(self.records) for e, exp in enumerate(rec.expressions)
                      if exp.positive or cfg.negatives]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> ClipSample:
        rng = np.random.default_rng([self.cfg.seed, self.epoch, index])
        rec = self.records[self.items[index][0]]
        exp = rec.expressions[self.items[index][1]]
        if self.cfg.sampling == "moment":
            idx, valid = sample_moment_frames(len(rec.video), self.cfg.num_frames, exp.spans, rng)
        else:
            idx, valid = sample_frames(len(rec.video), self.cfg.num_frames, self.cfg.sampling, rng)
        if self.cfg.keep_mask_frame and exp.positive:
            mode = "window" if self.cfg.sampling == "moment" else self.cfg.sampling
            idx = include_frame(idx, mask_frames(rec, exp), len(rec.video), mode, rng)
        target = exp
        if self.cfg.oss and exp.positive:  # OSS: only the objects referred within this clip are targets
            target = replace(exp, obj_ids=objects_in(exp, idx[valid]))
        clip = self.load_clip(rec, target, idx)
        known = None
        if self.cfg.instances:
            ids = sorted(rec.tracks)
            clip, known = replace(clip, instances=instance_map(rec, ids, idx, clip.size)), instance_kinds(rec, ids, idx)
        clip = self._augment(clip, rng, mirror=self.features is None or not hasattr(self.features, "has_mirror")
                             or self.features.has_mirror(rec.video_id))
        h, w = clip.size
        boxes = np.nan_to_num(clip.boxes / np.array([w, h, w, h], np.float32), nan=0.0)
        present = clip.present()
        spans = exp.spans
        in_span = np.array([spans is None or any(s <= i < e for s, e in spans) for i in idx])
        feats = None
        if self.features is not None:
            feats = self.features.lookup(rec.video_id, [int(i) for i in idx], clip.flipped)
        side = tf.swap_left_right if clip.flipped else (lambda s: s)  # the texts read as the (mirrored) frames
        others = [e.text for e in rec.expressions if e is not exp and not set(e.obj_ids) & set(exp.obj_ids)]
        return ClipSample(
            frames=torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float().div_(255.0),  # [T, 3, H, W]
            target_kind=torch.from_numpy(clip.kinds.astype(np.int64)),
            masks=torch.from_numpy(clip.masks).float(), boxes=torch.from_numpy(boxes).float(),
            present=torch.from_numpy(present), valid=torch.from_numpy(valid), in_span=torch.from_numpy(in_span),
            positive=exp.positive, text=clip.text, video_id=rec.video_id, exp_id=exp.exp_id,
            frame_index=torch.from_numpy(idx.astype(np.int64)), flipped=clip.flipped, features=feats,
            span_known=spans is not None,
            positives=[side(t) for t in exp.augmented_positives], negatives=[side(t) for t in exp.hard_negatives],
            others=[side(t) for t in dict.fromkeys(others) if t != exp.text],
            **({} if known is None else dict(
                instances=torch.from_numpy(clip.instances.astype(np.int64)), instance_known=torch.from_numpy(known),
                refers=torch.tensor([o in target.obj_ids for o in ids], dtype=torch.bool), instance_ids=ids)))

    def _augment(self, clip: tf.Clip, rng: np.random.Generator, mirror: bool = True) -> tf.Clip:
        """`mirror`: the video may be flipped (with a feature cache: only videos whose mirror image is cached)."""
        cfg = self.cfg
        if cfg.augment and self.features is None:
            if cfg.resize_shorter:
                clip = tf.random_resize(clip, cfg.resize_shorter, rng)
            if cfg.crop_min_scale > 0:
                clip = tf.random_crop(clip, cfg.crop_min_scale, rng)
        if cfg.size is not None:
            clip = tf.resize(clip, *cfg.size)
        if cfg.augment and rng.random() < cfg.flip_prob and mirror:
            clip = tf.hflip(clip)
        if cfg.augment and cfg.photometric > 0 and self.features is None:
            clip = tf.photometric(clip, rng, cfg.photometric)
        return clip

    @staticmethod
    def load_clip(rec: VideoRecord, exp: Expression, idx: np.ndarray) -> tf.Clip:
        """Frames `idx` of the record with the expression's union target (see the module docstring)."""
        frames = np.stack([rec.video.frame(int(i)) for i in idx])  # [T, H, W, 3]
        t, h, w = frames.shape[:3]
        masks, boxes = np.zeros((t, h, w), bool), np.full((t, 4), np.nan, np.float32)
        kinds = np.zeros(t, np.int64)
        for j, i in enumerate(idx):
            if not exp.positive:
                ks = {tr.targets[i].kind for tr in rec.tracks.values()}
                kinds[j] = TargetKind.MASK if TargetKind.MASK in ks else TargetKind.BOX if TargetKind.BOX in ks else TargetKind.NONE
                continue
            targets = []
            for oid in exp.obj_ids:
                if oid not in rec.tracks:
                    raise DatasetError(f"video {rec.video_id!r} expression {exp.exp_id!r} refers to object {oid}, "
                                       f"which has no track (tracks: {sorted(rec.tracks)})")
                targets.append(rec.tracks[oid].targets[i])
            ks = {tg.kind for tg in targets}
            if TargetKind.NONE in ks:
                continue
            if ks == {TargetKind.MASK}:
                for tg in targets:
                    m = tg.load_mask()
                    if m.shape != (h, w):
                        raise DatasetError(f"video {rec.video_id!r} frame {i}: mask of size {m.shape} for a frame of size {(h, w)}")
                    masks[j] |= m
                kinds[j] = TargetKind.MASK
                b = box_from_mask(masks[j])
            else:
                kinds[j] = TargetKind.BOX
                bs = [tg.box if tg.kind == TargetKind.BOX else box_from_mask(tg.load_mask()) for tg in targets]
                bs = [b for b in bs if b is not None]
                b = (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs)) if bs else None
            if b is not None:
                boxes[j] = b
        return tf.Clip(frames=frames, masks=masks, boxes=boxes, kinds=kinds, text=exp.text)


def instance_map(rec: VideoRecord, ids: list[int], idx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """int16 [T, H, W]: k + 1 where object ids[k] has a MASK target (later objects drawn over earlier ones)."""
    out = np.zeros((len(idx), *size), np.int16)
    for k, oid in enumerate(ids):
        for j, i in enumerate(idx):
            tg = rec.tracks[oid].targets[i]
            if tg.kind == TargetKind.MASK:
                m = tg.load_mask()
                if m.shape != tuple(size):
                    raise DatasetError(f"video {rec.video_id!r} frame {i}: mask of object {oid} has size {m.shape} "
                                       f"for a frame of size {tuple(size)}")
                out[j][m] = k + 1
    return out


def instance_kinds(rec: VideoRecord, ids: list[int], idx: np.ndarray) -> np.ndarray:
    """bool [T, K]: object ids[k] has a MASK target in frame idx[t]."""
    return np.array([[rec.tracks[o].targets[i].kind == TargetKind.MASK for o in ids] for i in idx], bool).reshape(len(idx), len(ids))


def _pad_instances(samples: Sequence[ClipSample]) -> dict:
    """Batch fields of the instance targets, K padded to the batch's largest (padding: id -1, never known)."""
    k = max(len(s.instance_ids) for s in samples)
    known = torch.zeros(len(samples), samples[0].instances.shape[0], k, dtype=torch.bool)
    refers = torch.zeros(len(samples), k, dtype=torch.bool)
    ids = torch.full((len(samples), k), -1, dtype=torch.long)
    for b, s in enumerate(samples):
        n = len(s.instance_ids)
        known[b, :, :n], refers[b, :n] = s.instance_known, s.refers
        ids[b, :n] = torch.tensor(s.instance_ids, dtype=torch.long)
    return {"instances": torch.stack([s.instances for s in samples]), "instance_known": known, "refers": refers,
            "instance_ids": ids}


def collate(samples: Sequence[ClipSample]) -> Batch:
    """Stack B ClipSamples (same T, H, W) into a Batch."""
    if not samples:
        raise ValueError("cannot collate an empty list of clips")
    shapes = {tuple(s.frames.shape) for s in samples}
    if len(shapes) > 1:
        raise ConfigError(f"clips of different shapes {sorted(shapes)} cannot batch; set clip.size to a fixed (H, W)")
    stack = lambda name: torch.stack([getattr(s, name) for s in samples])  # noqa: E731
    feats = None
    if samples[0].features is not None:
        feats = [torch.stack([s.features[lvl] for s in samples]) for lvl in range(len(samples[0].features))]  # [B, T, C, h, w]
    return Batch(frames=stack("frames"), target_kind=stack("target_kind"), masks=stack("masks"), boxes=stack("boxes"),
                 present=stack("present"), valid=stack("valid"), in_span=stack("in_span"),
                 positive=torch.tensor([s.positive for s in samples], dtype=torch.bool),
                 text=[s.text for s in samples], video_ids=[s.video_id for s in samples],
                 exp_ids=[s.exp_id for s in samples], frame_index=stack("frame_index"), features=feats,
                 span_known=torch.tensor([s.span_known for s in samples], dtype=torch.bool),
                 positives=[list(s.positives) for s in samples], negatives=[list(s.negatives) for s in samples],
                 others=[list(s.others) for s in samples],
                 **(_pad_instances(samples) if samples[0].instances is not None else {}))
