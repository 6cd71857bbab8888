"""Where a model's J&F goes, on the synthetic test split: localisation, query selection or discrimination.

For each trained run (`final.pt` written by wsrvos_tables.py) and each positive test expression, the model sees
all frames of the video at the training size and the ground truth (used here only to score) gives, at that size
(masks upsampled from stride 4, as the predictor does; a frame without the target counts 1 when the mask is empty):
- J chosen: IoU of the query the predictor picks (highest summed score) with the target, mean over frames;
- J oracle: the best query's IoU (is the right mask among the proposals?);
- area ratio: predicted area over target area (median over expressions; 0 = empty masks, >> 1 = flooding);
- empty: share of frames where the chosen mask is empty;
- positive > negatives: share of expressions whose video-level score (log-sum-exp over queries of the mean over
  frames) beats every one of the dataset's hard negatives of that expression (discrimination from text).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wsrvos_diagnose.py --data data/synth RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import rvos  # noqa: F401,E402
from common import command_line, machine_line, markdown_table  # noqa: E402
from rvos.data import transforms as tf  # noqa: E402
from rvos.data.clips import ClipDataset  # noqa: E402
from rvos.data.readers import open_dataset  # noqa: E402
from rvos.train.checkpoint import load_model_from_checkpoint  # noqa: E402


def video_tensor(rec, exp, size):
    idx = np.arange(len(rec.video))
    clip = ClipDataset.load_clip(rec, exp, idx)
    clip = tf.resize(clip, *size)
    frames = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float().div_(255.0)  # [T, 3, H, W]
    return frames, torch.from_numpy(clip.masks).float()  # [T, H, W]


@torch.no_grad()
def diagnose(model, cfg, records, max_expressions=None) -> dict:
    size = tuple(cfg.data.clip.size)
    chosen_j, oracle_j, ratios, empty, wins = [], [], [], [], []
    n = 0
    for rec in records:
        exps = [e for e in rec.expressions if e.positive]
        if not exps:
            continue
        frames, _ = video_tensor(rec, exps[0], size)
        feats = model.encode_frames(frames)  # per level [T, C, h, w]
        for exp in exps:
            if max_expressions is not None and n >= max_expressions:
                break
            n += 1
            _, gt = video_tensor(rec, exp, size)
            out = model.decode(feats, model.encode_text([exp.text]), 1, len(frames))
            logits = out.mask_logits[0]  # [T, Q, h, w]
            target = gt > 0.5  # [T, H, W] at the training size
            pred = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False) > 0  # [T,Q,H,W]
            inter = (pred & target[:, None]).flatten(2).sum(-1).float()  # [T, Q]
            union = (pred | target[:, None]).flatten(2).sum(-1).float()
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))  # empty & empty = 1
            q = int(out.scores[0].sigmoid().sum(0).argmax())
            chosen_j.append(float(iou[:, q].mean()))
            oracle_j.append(float(iou.mean(0).max()))
            area_t = float(target.sum())
            ratios.append(float(pred[:, q].sum()) / area_t if area_t else float("nan"))
            empty.append(float((pred[:, q].flatten(1).sum(-1) == 0).float().mean()))
            if exp.hard_negatives and getattr(model, "expression_scorer", None) is not None:
                x = model.match_sentences(out.extras["proposal_features"][0], [exp.text, *exp.hard_negatives])
                s = x.mean(0).logsumexp(0)  # [1 + N]: mean over frames, log-sum-exp over queries
                wins.append(float(s[0] > s[1:].max()))
    ratios = [r for r in ratios if r == r]
    return {"expressions": n, "J chosen": statistics.mean(chosen_j), "J oracle": statistics.mean(oracle_j),
            "area ratio": statistics.median(ratios) if ratios else float("nan"),
            "empty": statistics.mean(empty), "pos > negs": statistics.mean(wins) if wins else float("nan")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders holding final.pt (or checkpoint files)")
    ap.add_argument("--data", type=Path, required=True, help="the synthetic benchmark")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-expressions", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(command_line())
    print(machine_line())
    records = open_dataset(args.data, split=args.split)
    rows = []
    for run in args.runs:
        path = run / "final.pt" if run.is_dir() else run
        model, cfg = load_model_from_checkpoint(path)
        d = diagnose(model, cfg, records, args.max_expressions)
        rows.append((run.name, f"{cfg.method.name} / {cfg.data.regime}", d["expressions"], f"{100 * d['J chosen']:.1f}",
                     f"{100 * d['J oracle']:.1f}", f"{d['area ratio']:.2f}", f"{100 * d['empty']:.1f}",
                     "-" if d["pos > negs"] != d["pos > negs"] else f"{100 * d['pos > negs']:.1f}"))
        print(rows[-1], flush=True)
    print(markdown_table(["run", "method / regime", "expressions", "J chosen", "J oracle", "area ratio", "empty %",
                          "pos > negs %"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
