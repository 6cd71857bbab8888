"""The two-step baseline of WRVOS Table XII: train on mask + boxes, turn the boxes into pseudo masks with that
model, retrain fully supervised on the pseudo masks.

Step 1: WRVOS with LGCFS and BLCL off, i.e. L_MASK on the mask frame and L_MIL on the box frames (the paper: "We
adopt L_MASK and L_MIL as the loss functions for the frame with the mask and bounding box annotation").
Pseudo-labelling (`pseudo_mask_records`), per object track, every BOX target becomes a MASK target:
- the object's mask is predicted with a sentence that refers to it: one that refers to it alone when there is one,
  else the first that includes it (the prediction is then the union of its objects, cut by this object's box);
- our choice: the prediction is intersected with the annotated box (the box is ground truth: nothing outside it
  is the object), and when nothing of the prediction is left inside the box the filled box is the pseudo mask
  (the annotation says the object is visible there, so an empty mask would contradict it);
- a box annotated as "not visible" (box None) becomes an empty mask (same meaning);
- MASK and NONE targets stay as they are; tracks that no sentence refers to keep their boxes (no clip ever
  targets them). Pseudo masks are kept as COCO RLE (pycocotools) and decoded on demand (FnMask).
Step 2: SimRVOS on the pseudo-labelled records (every annotated frame is now a mask: the `full` regime), from a
fresh model by default (`step2_init="fresh"`; "step1" continues from the step-1 weights).
The BLCL branch is off in both steps (the baseline is the plain SimRVOS model).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from rvos.data.types import Expression, FnMask, FrameTarget, ObjectTrack, TargetKind, VideoRecord
from rvos.errors import ConfigError
from rvos.infer.records import predict_records
from rvos.infer.rle import decode_rle, encode_rle
from rvos.methods.simrvos import SimRVOSConfig


PSEUDO = "pseudo mask"  # FnMask.source prefix of the masks this module makes


def _sentence_for(rec: VideoRecord, obj_id: int) -> Optional[Expression]:
    """A sentence referring to `obj_id` alone if any, else the first one that includes it, else None."""
    refs = [e for e in rec.expressions if obj_id in e.obj_ids]
    alone = [e for e in refs if len(e.obj_ids) == 1]
    return (alone or refs or [None])[0]


def box_rect(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """bool [H, W], True on the pixels a box (x0, y0, x1, y1), pixels, exclusive max, overlaps."""
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    out = np.zeros((height, width), bool)
    out[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = True  # at least one pixel
    return out


def _rle_target(mask: np.ndarray, source: str) -> FrameTarget:
    return FrameTarget(TargetKind.MASK, mask=FnMask(partial(decode_rle, encode_rle(mask)), source=source))


def pseudo_mask_records(model, records: Sequence[VideoRecord], *, size: Optional[int] = None, threshold: float = 0.5,
                        device: str = "cpu", restrict_to_box: bool = True, progress: bool = False
                        ) -> list[VideoRecord]:
    """Records with every BOX target replaced by a MASK target predicted by `model` (module docstring).
    `size`: shorter side the videos are segmented at (None: their own size); `threshold`: on sigmoid(logit)."""
    plan: dict[tuple[str, int], str] = {}  # (video, object) -> exp_id of the sentence that segments it
    for rec in records:
        for tr in rec.tracks.values():
            if any(t.kind == TargetKind.BOX for t in tr.targets):
                e = _sentence_for(rec, tr.obj_id)
                if e is not None:
                    plan[(rec.video_id, tr.obj_id)] = e.exp_id
    wanted = {(vid, exp) for (vid, _), exp in plan.items()}
    preds = predict_records(model, [r for r in records if any(v == r.video_id for v, _ in wanted)],
                            expressions=lambda r, e: (r.video_id, e.exp_id) in wanted, size=size,
                            threshold=threshold, device=device, progress=progress)
    out = []
    for rec in records:
        h, w = rec.video.height, rec.video.width
        tracks = {}
        for key, tr in rec.tracks.items():
            exp = plan.get((rec.video_id, tr.obj_id))
            if exp is None:
                tracks[key] = tr
                continue
            targets = []
            for i, t in enumerate(tr.targets):
                if t.kind != TargetKind.BOX:
                    targets.append(t)
                    continue
                where = f"{PSEUDO}: video {rec.video_id} object {tr.obj_id} frame {i}"
                if t.box is None:
                    targets.append(_rle_target(np.zeros((h, w), bool), where))
                    continue
                rect = box_rect(t.box, h, w)
                m = preds[(rec.video_id, exp, i)]
                m = m & rect if restrict_to_box else m
                targets.append(_rle_target(m if m.any() else rect, where))
            tracks[key] = ObjectTrack(tr.obj_id, targets, tr.category)
        out.append(replace(rec, tracks=tracks))
    return out


def pseudo_mask_quality(pseudo: Sequence[VideoRecord], full: Sequence[VideoRecord]) -> dict:
    """Mean IoU of the pseudo masks (those `pseudo_mask_records` made) against the dense ground truth of the same
    records (`full`: the records under the `full` regime), over the frames where that has a mask."""
    by_id = {r.video_id: r for r in full}
    ious = []
    for rec in pseudo:
        ref = by_id.get(rec.video_id)
        if ref is None:
            continue
        for key, tr in rec.tracks.items():
            gt_tr = ref.tracks.get(key)
            for i, t in enumerate(tr.targets):
                g = gt_tr.targets[i] if gt_tr is not None and i < len(gt_tr.targets) else None
                made = isinstance(t.mask, FnMask) and t.mask.source.startswith(PSEUDO)
                if not made or g is None or g.kind != TargetKind.MASK:
                    continue
                p, q = t.load_mask(), g.load_mask()
                union = np.count_nonzero(p | q)
                ious.append(1.0 if union == 0 else np.count_nonzero(p & q) / union)
    return {"pseudo_masks": len(ious), "mean_iou": float(np.mean(ious)) if ious else math.nan}


@dataclass
class TwoStepResult:
    model: object  # the step-2 model
    step1_model: object
    pseudo_records: list[VideoRecord]
    step1_parts: dict
    step2_parts: dict


def step_configs(cfg):
    """(step 1, step 2) TrainConfigs derived from `cfg`: WRVOS mask + MIL, then SimRVOS; BLCL branch off."""
    from rvos.train.config import MethodConfig

    params = dict(cfg.method.params) if cfg.method.name in ("simrvos", "wrvos") else {}
    sim = {f.name for f in dataclasses.fields(SimRVOSConfig)}
    model = replace(cfg.model, blcl=False)
    step1 = replace(cfg, model=model, method=MethodConfig("wrvos", {**params, "lgcfs": False, "blcl": False}))
    step2 = replace(cfg, model=model, data=replace(cfg.data, regime="full"),
                    method=MethodConfig("simrvos", {k: v for k, v in params.items() if k in sim}))
    return step1, step2


def train_two_step(cfg, out_dir: str | Path, *, records: Optional[Sequence[VideoRecord]] = None, features=None,
                   hooks: Optional[Callable[[], list]] = None, eval_fn=None, size: Optional[int] = None,
                   threshold: float = 0.5, restrict_to_box: bool = True, step2_init: str = "fresh") -> TwoStepResult:
    """Run the two-step baseline from the TrainConfig `cfg` (its data.regime gives the step-1 supervision, e.g.
    mask_box) into OUT/step1 and OUT/step2. `records`: the training records already under that regime (as
    `Trainer` takes them; default: loaded from cfg.data). `features`: a feature cache for both steps (default:
    step 1 builds one when cfg.loop.feature_cache is on, and step 2 reuses it).
    `hooks()`: a fresh hook list per step (default: the trainer's). `eval_fn`: validation of step 2.
    `size`: shorter side for pseudo-labelling (default: the shorter side of cfg.data.clip.size)."""
    from rvos.train.loop import Trainer, load_records

    if step2_init not in ("fresh", "step1"):
        raise ConfigError(f"step2_init must be 'fresh' or 'step1', got {step2_init!r}")
    out_dir = Path(out_dir)
    cfg1, cfg2 = step_configs(cfg)
    if records is None:
        records = load_records(cfg1, cfg1.data.train_split)
    t1 = Trainer(cfg1, out_dir / "step1", records=records, features=features, hooks=None if hooks is None else hooks())
    parts1 = t1.fit()
    if size is None and cfg.data.clip.size is not None:
        size = int(min(cfg.data.clip.size))
    pseudo = pseudo_mask_records(t1.model, records, size=size, threshold=threshold, device=str(t1.device),
                                 restrict_to_box=restrict_to_box)
    features = t1.dataset.features  # the cache step 1 was given or built (same frames): step 2 reuses it
    t2 = Trainer(cfg2, out_dir / "step2", records=pseudo, features=features, eval_fn=eval_fn,
                 model=t1.model if step2_init == "step1" else None, hooks=None if hooks is None else hooks())
    parts2 = t2.fit()
    return TwoStepResult(t2.model, t1.model, pseudo, parts1, parts2)
