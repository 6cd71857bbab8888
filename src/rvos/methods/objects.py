"""Training the object-centric model (`model.head="objects"`, models/object_model.py) in two phases.

Phase 1, `Objects` (the per-frame object decoder): every object of every frame is a target, whatever sentence the
clip came with. Queries are matched one-to-one to the frame's objects (losses/objects.py); matched queries learn
the object's mask (BCE + dice) and objectness 1, the others objectness 0. Every decoder layer is supervised. In a
frame where some object of the video has no mask target (a weak regime), unmatched queries are not pushed to
"no object" there, since they may have found that object. Needs `data.clip.instances=true`.

Phase 2, `Referrer` (which tracks a sentence refers to): the phase-1 model is frozen; every training video (and
its mirror image) is tracked once into a `TrackCache` (train/track_cache.py) that knows which track is which
annotated object. The referrer then trains on (video, sentence) pairs from that cache: per track a BCE (is it
referred?), per referred track and frame a BCE against "the sentence holds now" (its temporal spans when
annotated, else wherever the object is visible). With `data.negative_ratio`, each video also gets that many
sentences of unrelated videos per positive one (rvos.data.negatives, as R2-VOS pairs them: seeded, no shared
category), which refer to nothing there.

`train_objects(cfg, out)` runs both phases: phase 1 into OUT/objects, phase 2 into OUT, so OUT/checkpoints/last.pt
is the whole model, as for every other method; `--resume` continues whichever phase was running.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import torch
import torch.nn.functional as F
from torch import nn

from rvos.data.batch import Batch
from rvos.errors import ConfigError
from rvos.losses.objects import ObjectLossWeights, object_losses

OBJECT_PARTS = ("obj", "mask_bce", "mask_dice")
REFER_PARTS = ("refer", "relevance")


@dataclass
class ObjectsConfig:
    weights: dict = field(default_factory=lambda: {"obj": 2.0, "mask_bce": 5.0, "mask_dice": 5.0})
    no_object: float = 0.5  # weight of the objectness loss of unmatched queries
    deep_supervision: bool = True  # also supervise every earlier decoder layer
    # phase 2 (the referrer), run by train_objects after loop.steps of phase 1
    refer_steps: int = 2000
    refer_lr: float = 5.0e-4
    refer_batch: int = 32
    refer_decay_at: float = 0.8  # lr x0.1 after this fraction of refer_steps
    refer_weights: dict = field(default_factory=lambda: {"refer": 1.0, "relevance": 0.5})
    assign_iou: float = 0.3  # a track is an annotated object when their video-level mask IoU is above this


def check_weights(weights: dict, known: tuple[str, ...], what: str) -> dict[str, float]:
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise ConfigError(f"{what}: unknown loss parts {unknown}; known parts: {list(known)}")
    return {k: float(v) for k, v in weights.items()}


def combine(parts: dict[str, torch.Tensor], weights: dict[str, float]) -> dict[str, torch.Tensor]:
    missing = [k for k, w in weights.items() if w and k not in parts]
    if missing:
        raise ConfigError(f"loss parts {missing} are weighted but were not computed")
    return {"loss": sum(w * parts[k] for k, w in weights.items() if w), **parts}


def frame_targets(batch: Batch, size: tuple[int, int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per frame of the batch (B*T, frame-major) the masks [K_f, h, w] of its annotated visible objects at the
    prediction's size (area-downsampled, soft), and complete [B*T]: every object of the video is annotated there."""
    if batch.instances is None:
        raise ConfigError("the objects method needs every object's masks: set data.clip.instances=true")
    b, t = batch.instances.shape[:2]
    inst = batch.instances.flatten(0, 1)  # [B*T, H, W]
    known = batch.instance_known.flatten(0, 1)  # [B*T, K]
    real = (batch.instance_ids >= 0).repeat_interleave(t, dim=0)  # [B*T, K]
    valid = batch.valid.flatten()
    out = []
    for n in range(b * t):
        ks = [k for k in range(known.shape[1]) if known[n, k] and valid[n]]
        if not ks:
            out.append(inst.new_zeros((0, *size), dtype=torch.float32))
            continue
        onehot = torch.stack([(inst[n] == k + 1) for k in ks]).float()[None]  # [1, K_f, H, W]
        small = F.interpolate(onehot, size=size, mode="area")[0]
        out.append(small[small.flatten(1).amax(1) > 0])  # visible objects only
    complete = ((known | ~real).all(1) & valid)
    return out, complete


class Objects(nn.Module):
    """Phase 1: the set-prediction loss of the object decoder on every frame of the clips."""

    def __init__(self, model: nn.Module, cfg: ObjectsConfig | None = None):
        super().__init__()
        if not getattr(model, "video_level", False):
            raise ConfigError("method.name=objects trains the object-centric model: set model.head=objects")
        self.model, self.cfg = model, cfg or ObjectsConfig()
        self.weights = check_weights(self.cfg.weights, OBJECT_PARTS, "objects weights")
        self.loss_weights = ObjectLossWeights(no_object=self.cfg.no_object, **self.weights)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        if batch.features is not None:
            feats = [f.flatten(0, 1) for f in batch.features]
        else:
            feats = self.model.encode_frames(batch.frames.flatten(0, 1))
        objects = self.model.frame_objects(feats)  # per frame, [B*T, Q, ...]
        targets, complete = frame_targets(batch, tuple(objects.masks.shape[-2:]))
        parts = object_losses(objects.logits, objects.masks, targets, self.loss_weights, complete)
        if self.cfg.deep_supervision:
            for logits, masks in objects.aux:
                aux = object_losses(logits, masks, targets, self.loss_weights, complete)
                parts = {k: parts[k] + aux[k] for k in parts}
        return combine(parts, self.weights)

    def parameter_groups(self, lr: float, backbone_lr: float) -> list[dict]:
        enc = {id(p) for m in (self.model.vision, self.model.text) for p in m.parameters()}
        trainable = [p for p in self.model.objects.parameters() if p.requires_grad]
        backbone = [p for p in self.model.vision.parameters() if p.requires_grad]
        groups = [{"name": "backbone", "params": backbone, "lr": backbone_lr},
                  {"name": "objects", "params": [p for p in trainable if id(p) not in enc], "lr": lr}]
        return [g for g in groups if g["params"]]


class Referrer(nn.Module):
    """Phase 2: which tracks a sentence refers to, from a TrackBatch (train/track_cache.py)."""

    def __init__(self, model: nn.Module, cfg: ObjectsConfig | None = None):
        super().__init__()
        self.model, self.cfg = model, cfg or ObjectsConfig()
        self.weights = check_weights(self.cfg.refer_weights, REFER_PARTS, "objects refer_weights")

    def forward(self, batch) -> dict[str, torch.Tensor]:
        text = self.model.encode_text(batch.text)
        logits, relevance = self.model.refer(batch.inputs, text)  # [B, K], [B, K, T]
        live = batch.live.float()  # [B, K] tracks that are an object somewhere
        refer = (F.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none") * live).sum() \
            / live.sum().clamp_min(1.0)
        rel_mask = batch.relevance_mask.float()  # [B, K, T]
        rel = (F.binary_cross_entropy_with_logits(relevance, batch.relevance, reduction="none") * rel_mask).sum() \
            / rel_mask.sum().clamp_min(1.0)
        return combine({"refer": refer, "relevance": rel}, self.weights)

    def parameter_groups(self, lr: float, backbone_lr: float) -> list[dict]:
        params = [p for p in self.model.referrer.parameters() if p.requires_grad]
        text = [p for p in self.model.text.parameters() if p.requires_grad]
        groups = [{"name": "referrer", "params": params, "lr": lr}, {"name": "text", "params": text, "lr": backbone_lr}]
        return [g for g in groups if g["params"]]


def check_model(model: nn.Module, method: str) -> None:
    """Other methods train the dynamic-filter heads; a clear error when they are given the objects head."""
    if getattr(model, "video_level", False):
        raise ConfigError(f"method.name={method} trains the single/multi-query heads; model.head=objects is trained "
                          f"with method.name=objects (see src/rvos/configs/objects_synth.yaml)")



def _phase_configs(cfg, params: ObjectsConfig):
    """(phase-1 config: clips carry every object; phase-2 config: the referrer's steps, batch and lr)."""
    import copy

    c1 = copy.deepcopy(cfg)
    c1.data.clip.instances = True
    c2 = copy.deepcopy(cfg)
    c2.loop.steps, c2.loop.batch_size, c2.loop.feature_cache = params.refer_steps, params.refer_batch, "off"
    c2.optim.lr = params.refer_lr
    c2.optim.decay_steps = [int(params.refer_decay_at * params.refer_steps)]
    return c1, c2


def train_objects(cfg, out, *, resume: bool = False, eval_fn=None, records=None, features=None) -> dict:
    """Both phases (see the module docstring): phase 1 into OUT/objects, the track cache into OUT/tracks.pt,
    phase 2 into OUT. Returns phase 2's last loss parts. `records` may repeat a video (to fill phase 1's epochs
    with few videos); each is tracked once. `features`: a prebuilt feature cache covering `records` (e.g. one
    cache shared by cross-validation folds)."""
    from functools import partial
    from pathlib import Path

    from rvos.models import build_model
    from rvos.train.checkpoint import checkpoint_path, load_checkpoint
    from rvos.train.config import from_dict
    from collections import Counter

    from rvos.train.loop import Trainer, is_extra, load_records, seed_all, unique_records
    from rvos.train.track_cache import TrackDataset, build_track_cache, collate_tracks, load_tracks, save_tracks

    out = Path(out)
    params = from_dict(ObjectsConfig, dict(cfg.method.params), "method.params")
    c1, c2 = _phase_configs(cfg, params)
    if records is None:
        records = load_records(cfg, cfg.data.train_split)
    seed_all(cfg.loop.seed)  # the model's initial weights come from the seed, not from whatever ran before
    model = build_model(cfg.model)
    done1 = False
    p1 = checkpoint_path(out / "objects")
    if resume and p1.is_file():
        done1 = int(load_checkpoint(p1, map_location="cpu")["step"]) >= (c1.loop.steps or 1)
    tracks_file = out / "tracks.pt"
    t1 = None
    if not (done1 and tracks_file.is_file() and resume):
        t1 = Trainer(c1, out / "objects", resume=resume and p1.is_file(), records=records, model=model,
                     method_factory=lambda m: Objects(m, params), features=features)
        if t1.step < t1.total_steps:
            t1.fit()
    else:
        from rvos.train.checkpoint import load_state_strict

        ck = load_checkpoint(p1, map_location="cpu")
        load_state_strict(model, ck["model"], p1, omitted=ck.get("omitted", ()))
    for p in list(model.vision.parameters()) + list(model.objects.parameters()):
        p.requires_grad_(False)  # phase 2 trains the referrer (and the text encoder, if not frozen)
    copies = Counter(r.video_id for r in records)  # repeated videos: tracked once, weighted as often in phase 2
    records = unique_records(records)
    if resume and tracks_file.is_file():
        videos = load_tracks(tracks_file, records)
    else:
        features = t1.dataset.features if t1 is not None else None
        device = t1.device if t1 is not None else "cpu"
        mirrored = {r.video_id for r in records if not is_extra(r)}
        videos = build_track_cache(model, records, tuple(cfg.data.clip.size), features, device, params.assign_iou,
                                   progress=cfg.loop.progress, mirrored=mirrored)
        save_tracks(videos, tracks_file)
    del t1
    if cfg.data.negative_ratio:
        from dataclasses import replace

        from rvos.data.negatives import sample_negatives, with_negatives

        from rvos.train.loop import negative_filter

        negatives = sample_negatives(records, cfg.data.negative_ratio, cfg.data.negative_seed,
                                     may_refer=negative_filter(cfg))
        paired = {r.video_id: r for r in with_negatives(records, negatives)}
        videos = [replace(v, record=paired[v.record.video_id]) for v in videos]
    dataset = TrackDataset([v for v in videos for _ in range(copies[v.record.video_id])])
    t2 = Trainer(c2, out, resume=resume and checkpoint_path(out).is_file(), model=model, records=records,
                 method_factory=lambda m: Referrer(m, params), dataset=dataset,
                 collate_fn=partial(collate_tracks, bins=model.bins), eval_fn=eval_fn)
    try:
        return t2.fit()
    finally:
        from rvos.train import distributed as D

        D.cleanup(t2.dist)
