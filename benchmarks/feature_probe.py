"""Linear probe: can an object's category be read from the frozen backbone's features at its location?

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/feature_probe.py --data data/synth \
        [--sizes 192x320,384x640] [--frames 0,8,16] [--vision efficientnet_lite0] [--out runs/feature_probe.json]

For every object of every training video of the synthetic benchmark, in a few frames: the backbone's features at
each level (C2..C5), averaged over the object's mask resized to that level's grid (area weights), are the input of a
multinomial logistic regression (torch, L-BFGS, weight decay picked on a held-out part of the training videos)
predicting the object's category. Trained on the train split's videos, scored on the valid split's videos (objects
never seen). Also scored: the same probe on the mask alone (the object's binary mask cropped to its box and resized
to 16x16), an upper bound saying the shapes are separable from the silhouette, and the majority class.
It tested an explanation BENCHMARKS.md once gave for the R2 consensus head staying at chance (that the frozen
features at the training size do not separate the synthetic shape categories) and ruled it out.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE)
import numpy as np
import torch
import torch.nn.functional as F

from rvos.data.readers import open_dataset
from rvos.data.types import TargetKind
from rvos.models.vision import build_vision
from rvos.train.feature_cache import cache_frame


def object_samples(records, frames: list[int]):
    """(video index, frame index, category, full-resolution bool mask) for every visible object."""
    out = []
    for v, rec in enumerate(records):
        for i in frames:
            if i >= len(rec.video):
                continue
            for track in rec.tracks.values():
                t = track.targets[i]
                if t.kind != TargetKind.MASK or track.category is None:
                    continue
                m = t.load_mask()
                if m.any():
                    out.append((v, i, track.category, m))
    return out


@torch.no_grad()
def pooled_features(encoder, records, samples, size: tuple[int, int]) -> list[np.ndarray]:
    """Per level [N, C_l]: mask-weighted mean of the level's features over each object."""
    by_frame: dict[tuple[int, int], list[int]] = {}
    for n, (v, i, _, _) in enumerate(samples):
        by_frame.setdefault((v, i), []).append(n)
    levels: list[np.ndarray] = []
    for (v, i), idx in by_frame.items():
        feats = encoder(cache_frame(records[v], i, size, False)[None])  # per level [1, C, h, w]
        if not levels:
            levels = [np.zeros((len(samples), f.shape[1]), np.float32) for f in feats]
        masks = torch.stack([torch.from_numpy(samples[n][3]).float() for n in idx])[:, None]  # [k, 1, H0, W0]
        masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        for l, f in enumerate(feats):
            w = F.adaptive_avg_pool2d(masks, f.shape[-2:])  # [k, 1, h, w] area weights
            pooled = (w * f).sum((2, 3)) / w.sum((2, 3)).clamp_min(1e-6)  # [k, C]
            levels[l][idx] = pooled.numpy()
    return levels


def silhouettes(samples, side: int = 16) -> np.ndarray:
    """[N, side*side]: each object's mask cropped to its box, resized."""
    out = []
    for _, _, _, m in samples:
        ys, xs = np.nonzero(m)
        crop = torch.from_numpy(m[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32))[None, None]
        out.append(F.interpolate(crop, size=(side, side), mode="area").flatten().numpy())
    return np.stack(out)


def fit_logreg(x: torch.Tensor, y: torch.Tensor, classes: int, wd: float) -> torch.nn.Linear:
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(x), y) + wd * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, classes: int, seed: int = 0) -> dict:
    """Standardise on train, pick weight decay on a 20% held-out part of train, refit, score test accuracy."""
    torch.manual_seed(seed)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = torch.from_numpy((xtr - mu) / sd).float(), torch.from_numpy((xte - mu) / sd).float()
    ya, yb = torch.from_numpy(ytr), torch.from_numpy(yte)
    perm = torch.randperm(len(a), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(a))
    fit, hold = perm[:cut], perm[cut:]
    best = None
    for wd in (1e-4, 1e-3, 1e-2, 1e-1):
        lin = fit_logreg(a[fit], ya[fit], classes, wd)
        acc = (lin(a[hold]).argmax(1) == ya[hold]).float().mean().item()
        if best is None or acc > best[1]:
            best = (wd, acc)
    lin = fit_logreg(a, ya, classes, best[0])
    with torch.no_grad():
        return {"test_acc": round((lin(b).argmax(1) == yb).float().mean().item(), 4),
                "train_acc": round((lin(a).argmax(1) == ya).float().mean().item(), 4), "weight_decay": best[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--sizes", default="192x320,384x640")
    ap.add_argument("--frames", default="0,8,16")
    ap.add_argument("--vision", default="efficientnet_lite0")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    frames = [int(f) for f in args.frames.split(",")]
    train, test = open_dataset(args.data, split="train"), open_dataset(args.data, split="valid")
    s_tr, s_te = object_samples(train, frames), object_samples(test, frames)
    cats = sorted({s[2] for s in s_tr})
    ytr = np.array([cats.index(s[2]) for s in s_tr])
    yte = np.array([cats.index(s[2]) if s[2] in cats else -1 for s in s_te])
    counts = np.bincount(ytr, minlength=len(cats))
    result = {"objects_train": len(s_tr), "objects_test": len(s_te), "categories": cats,
              "majority_class_acc": round(float((yte == counts.argmax()).mean()), 4),
              "silhouette_16x16": probe(silhouettes(s_tr), ytr, silhouettes(s_te), yte, len(cats)), "features": {}}
    print(f"{len(s_tr)} train / {len(s_te)} test objects, {len(cats)} categories; majority class "
          f"{result['majority_class_acc']:.3f}; silhouette probe {result['silhouette_16x16']['test_acc']:.3f}")
    encoder = build_vision(args.vision, pretrained=True, frozen=True).eval()
    for size_s in args.sizes.split(","):
        size = tuple(int(v) for v in size_s.split("x"))
        t0 = time.perf_counter()
        ftr, fte = pooled_features(encoder, train, s_tr, size), pooled_features(encoder, test, s_te, size)
        rows = {}
        for l in range(len(ftr)):
            rows[f"C{l + 2}"] = probe(ftr[l], ytr, fte[l], yte, len(cats))
        rows["C2..C5"] = probe(np.concatenate(ftr, 1), ytr, np.concatenate(fte, 1), yte, len(cats))
        result["features"][size_s] = rows
        print(f"{size_s} ({time.perf_counter() - t0:.0f} s): " +
              ", ".join(f"{k} {v['test_acc']:.3f}" for k, v in rows.items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
