"""What a model was trained on, recorded in its checkpoints ("trained_on") and printed by `rvos segment` and
`rvos eval --checkpoint`, so that a user sees what they got: a shapes model is not a real-video model.

`training_data(cfg, records)` summarises the training records (after the supervision regime, before sampled
negatives): the dataset folder, its layout and split, how many videos, expressions, frames and annotated targets
(masks, boxes), the regime, and for a synthetic benchmark its generator seed (from `synth.json`). Checkpoints
written before this was recorded fall back to what their config says, marked as such.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from rvos.data.types import TargetKind, VideoRecord

REGIME_WORDS = {
    "full": "dense targets as annotated",
    "spans": "dense targets plus temporal spans",
    "mask_box": "one mask per object plus boxes",
    "mask_box_random": "one mask per object (random frame) plus boxes",
    "box": "boxes only",
    "mask": "one mask per object",
    "text": "text only, no mask or box",
}


def _synthetic(root: str) -> Optional[dict]:
    path = Path(root) / "synth.json"
    if not root or not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {"generator": "rvos data synth", "seed": meta.get("seed"), "version": meta.get("version")}


def training_data(cfg, records: Sequence[VideoRecord]) -> dict:
    """The "trained_on" record of a run: plain values only (weights_only-safe)."""
    kinds = {TargetKind.MASK: 0, TargetKind.BOX: 0}
    records = list({r.video_id: r for r in records}.values())  # data.repeat: each video counted once
    for r in records:
        for track in r.tracks.values():
            for t in track.targets:
                if t.kind in kinds:
                    kinds[t.kind] += 1
    root = cfg.data.root
    return {
        "dataset": str(Path(root).resolve()) if root else None,
        "layout": cfg.data.layout,
        "split": cfg.data.train_split,
        "regime": cfg.data.regime,
        "videos": len(records),
        "video_ids": sorted(r.video_id for r in records),
        "expressions": sum(e.positive for r in records for e in r.expressions),
        "absent_expressions": sum(not e.positive for r in records for e in r.expressions),
        "frames": sum(len(r.video) for r in records),
        "mask_targets": kinds[TargetKind.MASK],
        "box_targets": kinds[TargetKind.BOX],
        "negative_ratio": cfg.data.negative_ratio,
        "negative_rule": getattr(cfg.data, "negative_rule", "category"),
        "extra_synth": getattr(cfg.data, "extra_synth", 0),  # generated synthetic videos among `videos`
        "repeat": getattr(cfg.data, "repeat", 1),  # the dataset's own videos, this many times an epoch
        "synthetic": _synthetic(root),
    }


def provenance(ckpt: dict) -> dict:
    """The checkpoint's "trained_on", or (older checkpoints) what its config says, with "recorded": False."""
    if ckpt.get("trained_on"):
        return {**ckpt["trained_on"], "recorded": True}
    data = (ckpt.get("config") or {}).get("data") or {}
    root = data.get("root") or None
    return {"dataset": root, "layout": data.get("layout"), "split": data.get("train_split"),
            "regime": data.get("regime"), "synthetic": _synthetic(root) if root else None, "recorded": False}


def is_synthetic(info: dict) -> bool:
    return bool(info.get("synthetic"))


def describe(info: dict) -> str:
    """One line: 'runs/demo/data (synthetic shapes: rvos data synth, seed 0), split train: 96 videos, ...'."""
    where = info.get("dataset") or "records passed in from Python (no data.root)"
    if is_synthetic(info):
        s = info["synthetic"]
        where += f" (synthetic shapes: {s.get('generator', 'rvos data synth')}, seed {s.get('seed')})"
    regime = info.get("regime")
    regime_text = f"regime {regime} ({REGIME_WORDS[regime]})" if regime in REGIME_WORDS else f"regime {regime}"
    if not info.get("recorded", True):
        return (f"{where}, split {info.get('split')}, {regime_text} (from its config: this checkpoint predates "
                "recorded training data, so its size is unknown)")
    extra = info.get("extra_synth") or 0
    size = (f"{info['videos']:,} videos" + (f" ({extra:,} of them generated: data.extra_synth)" if extra else "")
            + (f", its own x{info['repeat']} an epoch" if (info.get("repeat") or 1) > 1 else "")
            + f", {info['expressions']:,} expressions"
            + (f" (+{info['absent_expressions']:,} absent-object)" if info.get("absent_expressions") else "")
            + f", {info['frames']:,} frames; {info['mask_targets']:,} mask and {info['box_targets']:,} box targets")
    return f"{where}, split {info.get('split')}: {size}; {regime_text}"


def model_line(ckpt: dict) -> str:
    """'method simrvos, single head, vision efficientnet_lite0, text minilm, 1,600 steps' from a checkpoint."""
    cfg = ckpt.get("config") or {}
    model, method = cfg.get("model") or {}, (cfg.get("method") or {}).get("name", "?")
    steps = int(ckpt.get("step", 0))
    trained = f"{steps:,} step{'' if steps == 1 else 's'}"
    if method == "objects":  # two phases: the checkpoint's step is the referrer's
        trained = f"{int((cfg.get('loop') or {}).get('steps', 0)):,} object-decoder + {steps:,} referrer steps"
    return (f"method {method}, {model.get('head', '?')} head, vision {model.get('vision', '?')}, "
            f"text {model.get('text', '?')}, {trained}")


def summary_lines(path: str | Path, ckpt: dict) -> list[str]:
    """What `rvos segment` / `rvos eval --checkpoint` print about a checkpoint."""
    return [f"model: {path} ({model_line(ckpt)})", f"  trained on: {describe(provenance(ckpt))}"]
