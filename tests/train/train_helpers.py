"""Tiny in-memory records, a tiny model config and a small training method for the trainer tests."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rvos.data.frames import ArrayFrames
from rvos.data.types import ArrayMask, Expression, FrameTarget, ObjectTrack, TargetKind, Video, VideoRecord
from rvos.models.config import ModelConfig
from rvos.train.config import TrainConfig, from_dict


def rect(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def square_record(vid: str, n: int = 6, h: int = 32, w: int = 48, seed: int = 0) -> VideoRecord:
    """A bright square moving right (object 1) and a dark bar (object 2) on noise; expressions: the square, the
    bar, both, and a negative."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(60, 120, size=(n, h, w, 3), dtype=np.uint8)
    sq = [rect(h, w, 8, 18, 2 + 3 * t, 12 + 3 * t) for t in range(n)]
    bar = [rect(h, w, 22, 28, 30, 44) for _ in range(n)]
    for t in range(n):
        frames[t][sq[t]] = (230, 40, 40)
        frames[t][bar[t]] = (20, 20, 200)
    tracks = {1: ObjectTrack(1, [FrameTarget(TargetKind.MASK, ArrayMask(m)) for m in sq]),
              2: ObjectTrack(2, [FrameTarget(TargetKind.MASK, ArrayMask(m)) for m in bar])}
    exps = [Expression("0", "the red square on the left", [1]), Expression("1", "the blue bar", [2]),
            Expression("2", "both shapes", [1, 2], spans=[(0, 2)]), Expression("3", "a flying cat", [])]
    return VideoRecord(Video(vid, ArrayFrames(frames), h, w), tracks, exps)


def tiny_records(k: int = 2, n: int = 6) -> list[VideoRecord]:
    return [square_record(f"v{i}", n=n, seed=i) for i in range(k)]


def tiny_model_config(frozen: bool = False) -> ModelConfig:
    return ModelConfig(vision="tiny", vision_pretrained=False, vision_frozen=frozen, text="tiny", text_frozen=False,
                       dim=16, num_heads=2, fpn_dims=(16, 16, 8), mask_dim=8, dyn_hidden=8)


def tiny_train_config(**loop) -> TrainConfig:
    cfg = from_dict(TrainConfig, {
        "data": {"clip": {"num_frames": 3, "size": [32, 48], "photometric": 0.1}},
        "model": tiny_model_config().to_dict(),
        "method": {"name": "simrvos", "params": {"upsample_logits": False}},
        "optim": {"lr": 3e-3, "backbone_lr": 3e-3, "grad_clip": 1.0, "weight_decay": 0.0},
        "loop": {"steps": 6, "batch_size": 2, "checkpoint_every": 3, "log_every": 1, "progress": False, "plot": False, **loop},
    })
    return cfg


class MaskMethod(torch.nn.Module):
    """A small method for trainer tests: dice + BCE of the model's mask logits against the union target on MASK
    frames (empty for negatives), using cached features when the batch carries them."""

    def __init__(self, model, cfg=None):
        super().__init__()
        self.model = model
        self.scale = torch.nn.Parameter(torch.ones(()))  # a parameter outside the model (checkpointed as "method")

    def parameter_groups(self, lr: float, backbone_lr: float) -> list[dict]:
        vision = [p for p in self.model.vision.parameters() if p.requires_grad]
        ids = {id(p) for p in vision}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [g for g in ({"params": rest, "lr": lr}, {"params": vision, "lr": backbone_lr}) if g["params"]]

    def forward(self, batch) -> dict:
        out = self.model(None if batch.features is not None else batch.frames, batch.text, features=batch.features)
        logits = out.mask_logits[:, :, 0] * self.scale  # [B, T, H/4, W/4]
        target = F.interpolate(batch.masks, size=logits.shape[-2:], mode="nearest")  # [B, T, H/4, W/4]
        w = (batch.target_kind == TargetKind.MASK).float()[..., None, None]
        bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / w.sum().clamp(min=1) / logits[0, 0].numel()
        p = logits.sigmoid() * w
        dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + (target * w).sum() + 1)
        return {"loss": bce + dice, "bce": bce, "dice": dice}


def ddp_worker(rank: int, world: int, port: int, root: str) -> None:
    """One rank of the 2-process DDP test: trains 3 steps with gloo, saves its final parameters."""
    import os
    from pathlib import Path

    from rvos.train.loop import train

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    holder = {}

    def factory(model):
        holder["method"] = MaskMethod(model)
        return holder["method"]

    torch.manual_seed(rank)  # the trainer must re-seed: both ranks start from the same weights anyway
    train(tiny_train_config(steps=3, checkpoint_every=2), Path(root) / f"out{rank}", records=tiny_records(),
          method_factory=factory)
    torch.save({k: v.detach().clone() for k, v in holder["method"].state_dict().items()}, Path(root) / f"rank{rank}.pt")
