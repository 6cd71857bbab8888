"""Track cache: every training video tracked once by a frozen object decoder, for training the referrer.

For each record (and its mirror image, whose sentences read left/right swapped) the object decoder runs on every
frame (from the feature cache when there is one), its queries are linked into tracks (models/tracking.py) and
described (models/referring.py: [T, K, F] descriptors, kept as float16). Each track slot is assigned to the
annotated object whose masks it overlaps best over the video (Hungarian on video-level IoU at stride 4, over the
frames where the object has a mask target; above `assign_iou`). A (video, sentence) pair then gives the referrer
its targets: a track is referred when its object is one the sentence names.

`TrackDataset` has one item per (tracked video, expression); `collate_tracks` pads videos of different lengths and
resamples long ones exactly as the model does at inference (`ObjectRVOSModel.track_inputs`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from rvos.data.transforms import swap_left_right
from rvos.data.types import TargetKind, VideoRecord
from rvos.models.referring import TrackInputs, resample
from rvos.models.tracking import link_queries
from rvos.train.feature_cache import cache_frame


@dataclass
class TrackedVideo:
    record: VideoRecord
    flipped: bool
    descriptors: torch.Tensor  # float16 [T, K, F]
    assign: dict[int, int]  # track slot -> annotated object id
    visible: dict[int, np.ndarray]  # object id -> bool [T], the annotation says it is visible


def _object_masks(rec: VideoRecord, size: tuple[int, int], small: tuple[int, int], flipped: bool
                  ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], dict[int, np.ndarray]]:
    """Per object: masks at the prediction's size [T, h, w] (bool), mask frames [T] (bool), visible [T]."""
    masks, has, visible = {}, {}, {}
    n = len(rec.video)
    for oid, tr in rec.tracks.items():
        m = torch.zeros(n, *small, dtype=torch.bool)
        hm = torch.zeros(n, dtype=torch.bool)
        vis = np.zeros(n, bool)
        for t, tg in enumerate(tr.targets):
            vis[t] = tg.visible()
            if tg.kind != TargetKind.MASK:
                continue
            full = torch.from_numpy(tg.load_mask()).float()[None, None]
            full = F.interpolate(full, size=size, mode="nearest")
            if flipped:
                full = full.flip(-1)
            m[t] = F.interpolate(full, size=small, mode="area")[0, 0] >= 0.5
            hm[t] = True
        masks[oid], has[oid], visible[oid] = m, hm, vis
    return masks, has, visible


def assign_tracks(pred: torch.Tensor, objects: dict[int, torch.Tensor], mask_frames: dict[int, torch.Tensor],
                  min_iou: float) -> dict[int, int]:
    """pred bool [T, K, h, w] (tracks' masks where they are objects); objects: id -> bool [T, h, w] -> slot -> id."""
    ids = sorted(objects)
    if not ids:
        return {}
    iou = torch.zeros(pred.shape[1], len(ids))
    for j, oid in enumerate(ids):
        frames = mask_frames[oid]
        if not frames.any():
            continue
        p, g = pred[frames], objects[oid][frames][:, None]  # [T', K, h, w], [T', 1, h, w]
        inter = (p & g).sum((0, 2, 3)).float()
        union = (p | g).sum((0, 2, 3)).float()
        iou[:, j] = inter / union.clamp_min(1.0)
    rows, cols = linear_sum_assignment(-iou.numpy())
    return {int(k): ids[c] for k, c in zip(rows, cols) if iou[k, c] > min_iou}


@torch.no_grad()
def build_track_cache(model, records: Sequence[VideoRecord], size: tuple[int, int], features=None,
                      device: torch.device | str = "cpu", assign_iou: float = 0.3, chunk: int = 24,
                      progress: bool = False, mirrored=None) -> list[TrackedVideo]:
    """Track every record, plain and (those in `mirrored`, a set of video ids; None = all) mirrored."""
    was = model.training
    model.eval()
    out = []
    items = [(r, f) for r in records for f in ((False, True) if mirrored is None or r.video_id in mirrored else (False,))]
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="track cache", unit="video", dynamic_ncols=True)
    try:
        for rec, flipped in items:
            n = len(rec.video)
            descs, logits, masks = [], [], []
            feats_all, frames_all = [], []
            colour = getattr(model, "colour", False)  # descriptors that read the frames' colour need the frames
            for s in range(0, n, chunk):
                idx = list(range(s, min(n, s + chunk)))
                frames = None
                if features is None or colour:
                    frames = torch.stack([cache_frame(rec, i, size, flipped) for i in idx]).to(device)
                if features is not None:
                    feats = [f.to(device) for f in features.lookup(rec.video_id, idx, flipped)]
                else:
                    feats = model.encode_frames(frames)
                obj = model.frame_objects(feats)
                feats_all.append(feats)
                frames_all.append(frames)
                logits.append(obj.logits)
                masks.append(obj.masks)
                descs.append(obj)
            embed = torch.cat([o.embed for o in descs])
            logit = torch.cat(logits)
            perm = link_queries(embed, logit, model.momentum)  # [T, Q]
            d, pm = [], []
            for k, (o, feats, frames) in enumerate(zip(descs, feats_all, frames_all)):
                p = perm[k * chunk: k * chunk + o.embed.shape[0]]
                d.append(model.describe(o, feats, p, frames))
                sel = torch.gather(o.masks, 1, p[..., None, None].expand(-1, -1, *o.masks.shape[-2:]).to(o.masks.device))
                alive = torch.gather(o.logits, 1, p.to(o.logits.device)) > 0
                pm.append((sel > 0) & alive[..., None, None])
            desc = torch.cat(d).cpu()
            pred = torch.cat(pm).cpu()  # [T, K, h, w]
            objects, has, visible = _object_masks(rec, size, tuple(pred.shape[-2:]), flipped)
            out.append(TrackedVideo(rec, flipped, desc.half(), assign_tracks(pred, objects, has, assign_iou), visible))
    finally:
        model.train(was)
    return out


@dataclass
class TrackSample:
    descriptors: torch.Tensor  # [T, K, F]
    text: str
    labels: torch.Tensor  # [K] 1 = referred
    relevance: torch.Tensor  # [T, K] 1 = referred and the sentence holds at t
    live: torch.Tensor  # bool [K], the track is an object in some frame


@dataclass
class TrackBatch:
    inputs: TrackInputs
    text: list[str]
    labels: torch.Tensor  # [B, K]
    live: torch.Tensor  # bool [B, K]
    relevance: torch.Tensor  # [B, K, T'] soft targets after resampling
    relevance_mask: torch.Tensor  # bool [B, K, T'] live tracks on real frames

    @property
    def size(self) -> tuple[int, int]:
        return self.labels.shape[0], self.relevance.shape[-1]

    @property
    def device_type(self) -> str:
        return self.labels.device.type

    def to(self, device, non_blocking: bool = False) -> "TrackBatch":
        inp = TrackInputs(*(getattr(self.inputs, f.name).to(device, non_blocking=non_blocking)
                            for f in fields(TrackInputs)))
        return TrackBatch(inp, self.text, *(getattr(self, n).to(device, non_blocking=non_blocking)
                                            for n in ("labels", "live", "relevance", "relevance_mask")))


class TrackDataset(torch.utils.data.Dataset):
    """One item per (tracked video, expression), negatives included (they refer to no track)."""

    def __init__(self, videos: Sequence[TrackedVideo]):
        self.videos = list(videos)
        self.items = [(v, e) for v, tv in enumerate(self.videos) for e in range(len(tv.record.expressions))]

    def set_epoch(self, epoch: int) -> None:
        pass  # items do not change between epochs

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TrackSample:
        tv = self.videos[self.items[index][0]]
        exp = tv.record.expressions[self.items[index][1]]
        t, k = tv.descriptors.shape[:2]
        text, refs = exp.text, set(exp.obj_ids)
        if tv.flipped:
            text = swap_left_right(text)
        labels = torch.tensor([1.0 if tv.assign.get(j) in refs else 0.0 for j in range(k)])
        relevance = torch.zeros(t, k)
        holds = np.ones(t, bool) if exp.spans is None or not refs else \
            np.array([any(s <= i < e for s, e in exp.spans) for i in range(t)])
        for j in range(k):
            oid = tv.assign.get(j)
            if oid in refs:
                relevance[:, j] = torch.from_numpy(holds & tv.visible[oid]).float()
        live = tv.descriptors[..., 5].float().amax(0) > 0.5  # objectness channel
        return TrackSample(tv.descriptors.float(), text, labels, relevance, live)


def collate_tracks(samples: Sequence[TrackSample], bins: int) -> TrackBatch:
    from rvos.models.referring import video_inputs

    inputs = video_inputs([s.descriptors for s in samples], bins)
    t = inputs.tokens.shape[2]
    rel = torch.zeros(len(samples), inputs.tokens.shape[1], t)
    for i, s in enumerate(samples):
        r = resample(s.relevance[..., None], bins)[..., 0]  # [T', K]
        rel[i, :, : r.shape[0]] = r.T
    live = torch.stack([s.live for s in samples])
    mask = live[..., None] & inputs.valid[:, None, :]
    return TrackBatch(inputs, [s.text for s in samples], torch.stack([s.labels for s in samples]), live, rel, mask)


def tracked_summary(videos: Sequence[TrackedVideo]) -> dict[str, float]:
    """How well tracks cover the annotated objects: share of objects given a track."""
    objs = sum(len(v.record.tracks) for v in videos)
    got = sum(len(set(v.assign.values())) for v in videos)
    return {"videos": len(videos), "objects": objs, "assigned": got / max(objs, 1)}



def save_tracks(videos: Sequence[TrackedVideo], path) -> None:
    """The cache without its records (weights_only-safe), atomically."""
    from pathlib import Path

    from rvos.train.checkpoint import atomic_torch_save

    atomic_torch_save([{"video_id": v.record.video_id, "flipped": v.flipped, "descriptors": v.descriptors,
                        "assign": {int(k): int(o) for k, o in v.assign.items()},
                        "visible": {int(o): torch.from_numpy(m) for o, m in v.visible.items()}} for v in videos], Path(path))


def load_tracks(path, records: Sequence[VideoRecord]) -> list[TrackedVideo]:
    """A saved cache, joined again with its records; an error when they are not the ones it was built from."""
    from rvos.errors import ConfigError

    by_id = {r.video_id: r for r in records}
    raw = torch.load(path, map_location="cpu", weights_only=True)
    missing = sorted({d["video_id"] for d in raw} - set(by_id))
    if missing or len({d["video_id"] for d in raw}) != len(by_id):
        raise ConfigError(f"track cache {path} was built from other videos ({missing[:3]} ...); delete it to rebuild")
    return [TrackedVideo(by_id[d["video_id"]], bool(d["flipped"]), d["descriptors"], dict(d["assign"]),
                         {o: m.numpy() for o, m in d["visible"].items()}) for d in raw]
