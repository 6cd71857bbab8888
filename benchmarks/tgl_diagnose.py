"""Diagnostics behind the TGL table (BENCHMARKS.md, TGL section): where do TGL's parts act on the synthetic benchmark?

--oss: how often object-level selective supervision changes a training target at all. One epoch of the train
split's clips (the table's clip settings, same seed) is drawn twice, with `oss` off and on (same frames: OSS does
not touch the sampler's RNG); per expression kind: clips whose target differs, target pixels that differ, and how
many of those changed frames reach the language path's loss when MDP is on (MDP supervises the language path only
on referred frames, negatives and clips with unknown spans).

--propagation CKPT: does the propagation path (rvos.models.propagation) track? On the test split, with a trained
MDP run's checkpoint (benchmarks/tgl_table.py keeps them in OUT/runs/<run>/checkpoints/last.pt):
  * partial: each single-object partial-time expression's frames outside its annotated spans where the object is
    visible are propagated from the nearest annotated referred frames (the predictor's `memory` frames, nearest in
    time, as MDP with oracle moments) whose memory mask is (a) the ground-truth mask or (b) the language path's mask;
    compared with (c) copying the nearest referred frame's ground-truth mask (no motion) and (d) the language path
    itself in those frames (what the model does without MDP).
  * track: every single-object positive test expression, memory = the ground-truth mask of the object's first
    visible frame only, propagated to each later visible frame (a one-shot semi-supervised VOS test), by distance.
J and F per frame against the ground truth at the video's size (rvos.evaluate.jf.frame_jf), mean over frames.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tgl_diagnose.py --oss [--data data/synth]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tgl_diagnose.py --propagation runs/tgl_table300/runs/<mdp run>/checkpoints/last.pt
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
import numpy as np
import torch
import torch.nn.functional as F
from common import command_line, machine_line, markdown_table
from rvos.data.clips import ClipConfig, ClipDataset
from rvos.data.readers import open_dataset
from rvos.data.regimes import apply_regime
from rvos.data.spans import holds
from rvos.evaluate.jf import frame_jf
from rvos.infer.mdp import nearest
from rvos.train.checkpoint import load_model_from_checkpoint
from rvos.train.feature_cache import cache_frame


def kinds_of(root: Path, split: str) -> dict:
    meta = json.loads((root / "meta_expressions" / split / "meta_expressions.json").read_text())["videos"]
    return {(v, str(k)): e.get("kind", "?") for v, x in meta.items() for k, e in x["expressions"].items()}


def oss_effect(root: Path, clip: ClipConfig) -> None:
    records = apply_regime(open_dataset(root, split="train"), "spans")
    kinds = kinds_of(root, "train")
    plain, oss = ClipDataset(records, replace(clip, oss=False)), ClipDataset(records, replace(clip, oss=True))
    acc = defaultdict(lambda: defaultdict(float))
    for i in range(len(plain)):
        a, b = plain[i], oss[i]
        if not torch.equal(a.frame_index, b.frame_index):
            raise RuntimeError(f"item {i}: OSS changed the sampled frames")
        k = acc[kinds[(a.video_id, str(a.exp_id))]]
        valid = a.valid.bool()
        diff = (a.masks != b.masks).flatten(1).any(-1) & valid  # [T] frames whose target changed
        lang = a.in_span.bool() | (not a.positive) | (not a.span_known)  # frames in the MDP language loss
        k["clips"] += 1
        k["frames"] += float(valid.sum())
        k["clips changed"] += float(diff.any())
        k["frames changed"] += float(diff.sum())
        k["changed frames in the MDP language loss"] += float((diff & lang).sum())
        k["target pixels"] += float(a.masks[valid].sum())
        k["target pixels removed"] += float((a.masks[valid] > b.masks[valid]).sum())
    cols = ["clips", "clips changed", "frames", "frames changed", "changed frames in the MDP language loss",
            "target pixels", "target pixels removed"]
    total = {c: sum(k[c] for k in acc.values()) for c in cols}
    rows = [(kind, *(f"{acc[kind][c]:.0f}" for c in cols)) for kind in sorted(acc)] + [("all", *(f"{total[c]:.0f}" for c in cols))]
    print(f"\nOSS on one epoch of train clips (T={clip.num_frames}, sampling={clip.sampling}, seed {clip.seed})")
    print(markdown_table(["kind", *cols], rows))


def video_tensors(model, rec, size):
    frames = torch.stack([cache_frame(rec, i, size, False) for i in range(len(rec.video))])  # [T, 3, H, W]
    with torch.no_grad():
        feats = model.encode_frames(frames)  # C2..C5, [T, C_l, H_l, W_l]
        pf = model.propagation.embed(feats[:3])
    return feats, pf


def language_logits(model, feats, text: str) -> torch.Tensor:
    with torch.no_grad():
        out = model(None, [text], features=[f[None] for f in feats])
    logits = out.mask_logits[0]  # [T, Q, h, w]
    if logits.shape[1] > 1:
        return (logits.sigmoid() * out.scores[0].softmax(-1)[..., None, None]).sum(1).logit(eps=1e-4)
    return logits[:, 0]


def up(x: torch.Tensor, hw) -> np.ndarray:
    """logits [h, w] -> bool [H, W] (> 0 after bilinear upsampling)."""
    return (F.interpolate(x[None, None].float(), size=hw, mode="bilinear", align_corners=False)[0, 0] > 0).numpy()


def propagate(prop, pf, masks4: torch.Tensor, query: int, memory: list[int]) -> torch.Tensor:
    """logits [h4, w4] of frame `query` read from `memory` frames whose stride-4 mask probabilities are masks4."""
    with torch.no_grad():
        keys, values = prop.encode_memory(pf[memory], masks4[memory])
        dt = torch.tensor([[query - m for m in memory]], dtype=torch.float32)
        return prop.propagate(pf[[query]], keys[None], values[None], dt)[0]


def propagation_probe(root: Path, ckpt: Path) -> None:
    model, cfg = load_model_from_checkpoint(ckpt)
    if model.propagation is None:
        print(f"{ckpt}: the model has no propagation path (model.propagation=false)", file=sys.stderr)
        raise SystemExit(2)
    size = tuple(cfg.data.clip.size)
    prop = model.propagation
    records = apply_regime(open_dataset(root, split="test"), "spans")
    kinds = kinds_of(root, "test")
    part = defaultdict(list)  # method -> [(J, F)]
    track = defaultdict(lambda: defaultdict(list))  # distance bin -> method -> [(J, F)]
    for rec in records:
        feats, pf = video_tensors(model, rec, size)
        h4, w4 = pf.fine.shape[-2:]
        for e in rec.expressions:
            if not e.positive or len(e.obj_ids) != 1:
                continue
            tr = rec.tracks[e.obj_ids[0]]
            gt = [tr.targets[t].load_mask().astype(bool) for t in range(len(rec.video))]
            hw = gt[0].shape
            vis = [t for t, m in enumerate(gt) if m.any()]
            gt4 = F.adaptive_avg_pool2d(torch.from_numpy(np.stack(gt)).float()[:, None], (h4, w4))[:, 0]
            kind = kinds[(rec.video_id, str(e.exp_id))]
            lang = None
            if kind == "partial" and e.spans:
                referred = [t for t in vis if holds(e.spans, t)]
                queries = [t for t in vis if not holds(e.spans, t)]
                if not referred or not queries:
                    continue
                lang = language_logits(model, feats, e.text)  # [T, h, w]
                lang4 = F.interpolate(lang[:, None], size=(h4, w4), mode="bilinear", align_corners=False)[:, 0].sigmoid()
                for t in queries:
                    mem = nearest(referred, t, min(prop.memory, len(referred)))
                    near = min(mem, key=lambda m: (abs(m - t), m))
                    part["propagation, ground-truth memory"].append(frame_jf(up(propagate(prop, pf, gt4, t, mem), hw), gt[t]))
                    part["propagation, language-path memory"].append(frame_jf(up(propagate(prop, pf, lang4, t, mem), hw), gt[t]))
                    part["copy the nearest referred ground truth"].append(frame_jf(gt[near], gt[t]))
                    part["language path in these frames (no MDP)"].append(frame_jf(up(lang[t], hw), gt[t]))
            if len(vis) > 1:  # one-shot tracking from the first visible frame
                first = vis[0]
                for t in vis[1:]:
                    d = t - first
                    b = "1-2" if d <= 2 else "3-5" if d <= 5 else "6-11" if d <= 11 else "12+"
                    for bin_ in (b, "all"):
                        track[bin_]["propagation"].append(frame_jf(up(propagate(prop, pf, gt4, t, [first]), hw), gt[t]))
                        track[bin_]["copy the first frame"].append(frame_jf(gt[first], gt[t]))
    mean = lambda xs, i: statistics.mean(x[i] for x in xs)  # noqa: E731
    print(f"\npartial expressions, frames outside the spans where the object is visible ({ckpt})")
    if not part:
        print("(no single-object partial expression with frames on both sides of its spans in this split)")
    else:
        print(markdown_table(["mask from", "frames", "J", "F", "J&F"],
                             [(k, len(v), f"{mean(v, 0):.3f}", f"{mean(v, 1):.3f}",
                               f"{(mean(v, 0) + mean(v, 1)) / 2:.3f}") for k, v in part.items()]))
    print("\none-shot tracking: memory = the ground-truth mask of the first visible frame, single-object expressions")
    rows = []
    for b in ("1-2", "3-5", "6-11", "12+", "all"):
        if b in track:
            p, c = track[b]["propagation"], track[b]["copy the first frame"]
            rows.append((b, len(p), f"{mean(p, 0):.3f}", f"{mean(p, 1):.3f}", f"{mean(c, 0):.3f}", f"{mean(c, 1):.3f}"))
    print(markdown_table(["frames after", "frames", "propagation J", "propagation F", "copy J", "copy F"], rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/synth"))
    ap.add_argument("--oss", action="store_true", help="count the training targets OSS changes")
    ap.add_argument("--propagation", type=Path, default=None, metavar="CKPT", help="probe an MDP run's propagation")
    ap.add_argument("--num-frames", type=int, default=5)
    ap.add_argument("--sampling", default="window", choices=["window", "random", "moment"])
    args = ap.parse_args(argv)
    if not args.oss and args.propagation is None:
        ap.error("give --oss and/or --propagation CKPT")
    print(command_line())
    print(machine_line())
    if args.oss:
        oss_effect(args.data, ClipConfig(num_frames=args.num_frames, size=(192, 320), sampling=args.sampling,
                                         augment=False, seed=0))
    if args.propagation is not None:
        if not args.propagation.is_file():
            print(f"{args.propagation}: no such checkpoint", file=sys.stderr)
            return 2
        propagation_probe(args.data, args.propagation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
