"""`rvos data stats DATASET`: what a dataset holds and what it costs to annotate under each supervision regime.

Prints videos, frames, objects, expressions (positive / negative, multi-object, with spans), the annotated frames
by kind after the chosen regime, its annotation cost, and the cost of every regime side by side so a user can
choose what to pay for. `--json` prints the same as one JSON object. Every mask is decoded at most once.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from rvos.data.cost import BOX_SECONDS, MASK_SECONDS, SPAN_SECONDS, compare_regimes
from rvos.data.regimes import REGIMES, check_regime
from rvos.data.types import Records, require_file

LAYOUTS = ("auto", "ytvos", "davis", "mevis", "a2d", "jhmdb")


def dataset_stats(records: Records, regime: str = "full", seed: int = 0, mask_seconds: float = MASK_SECONDS,
                  box_seconds: float = BOX_SECONDS, span_seconds: float = SPAN_SECONDS, workers: int = 2) -> dict:
    """Counts of `records` (as read) and the cost of `regime` and of every other regime, as a JSON-ready dict."""
    check_regime(regime)  # fail before any mask is decoded
    exprs = [e for rec in records for e in rec.expressions]
    costs = compare_regimes(records, seed=seed, mask_seconds=mask_seconds, box_seconds=box_seconds,
                            span_seconds=span_seconds, workers=workers)
    chosen = costs[regime]
    return {
        "videos": len(records),
        "frames": sum(len(rec.video) for rec in records),
        "objects": sum(len(rec.tracks) for rec in records),
        "expressions": {
            "total": len(exprs),
            "positive": sum(e.positive for e in exprs),
            "negative": sum(not e.positive for e in exprs),
            "multi_object": sum(len(e.obj_ids) > 1 for e in exprs),
            "with_spans": sum(e.spans is not None for e in exprs),
        },
        "regime": regime,
        "seed": seed,
        "prices": {"mask_seconds": mask_seconds, "box_seconds": box_seconds, "span_seconds": span_seconds},
        "annotated_frames": {"mask": chosen.mask_frames, "box": chosen.box_frames, "none": chosen.none_frames,
                             "masks_drawn": chosen.masks, "boxes_drawn": chosen.boxes},
        "cost": _cost_row(chosen),
        "regimes": {name: _cost_row(r) for name, r in costs.items()},
    }


def _cost_row(r) -> dict:
    return {"masks": r.masks, "boxes": r.boxes, "spans": r.spans, "seconds": r.seconds, "hours": r.hours,
            "speedup": r.speedup, "ratio_to_full": r.ratio_to_full}


def _times(speedup: Optional[float]) -> str:
    return "free" if speedup is None else f"x{speedup:.2f}"


def format_stats(s: dict, title: str = "") -> str:
    e, f, c, p = s["expressions"], s["annotated_frames"], s["cost"], s["prices"]
    lines = [title] if title else []
    lines += [
        f"videos       {s['videos']}",
        f"frames       {s['frames']}",
        f"objects      {s['objects']}",
        f"expressions  {e['total']} (positive {e['positive']}, negative {e['negative']}, "
        f"multi-object {e['multi_object']}, with spans {e['with_spans']})",
        f"regime       {s['regime']} (seed {s['seed']})",
        f"annotated frames after the regime: mask {f['mask']} ({f['masks_drawn']} drawn), "
        f"box {f['box']} ({f['boxes_drawn']} drawn), none {f['none']}",
        f"annotation cost: {c['seconds']:,.0f} s = {c['hours']:,.2f} h "
        f"({_times(c['speedup'])} cheaper than full)",
        f"prices: mask {p['mask_seconds']:g} s, box {p['box_seconds']:g} s (WRVOS); "
        f"span {p['span_seconds']:g} s (assumed: start + end)",
        "",
        f"{'regime':<16}{'masks':>8}{'boxes':>8}{'spans':>7}{'seconds':>12}{'hours':>9}{'vs full':>9}",
    ]
    for name, r in s["regimes"].items():
        mark = " <" if name == s["regime"] else ""
        lines.append(f"{name:<16}{r['masks']:>8}{r['boxes']:>8}{r['spans']:>7}{r['seconds']:>12,.0f}"
                     f"{r['hours']:>9.2f}{_times(r['speedup']):>9}{mark}")
    return "\n".join(lines)


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset root folder")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto", help="dataset layout (default: detect)")
    parser.add_argument("--split", default=None, help="split to read (default: the layout's default)")
    parser.add_argument("--regime", choices=list(REGIMES), default="full", help="supervision regime (default: full)")
    parser.add_argument("--seed", type=int, default=0, help="seed of mask_box_random (default: 0)")
    parser.add_argument("--mask-seconds", type=float, default=MASK_SECONDS, help="seconds a mask (WRVOS: 79)")
    parser.add_argument("--box-seconds", type=float, default=BOX_SECONDS, help="seconds a box (WRVOS: 7)")
    parser.add_argument("--span-seconds", type=float, default=SPAN_SECONDS,
                        help="seconds to mark a temporal span's start and end (assumed: 10)")
    parser.add_argument("--workers", type=int, default=2, help="threads decoding masks (default: 2)")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON")


def run(args: argparse.Namespace) -> int:
    from rvos.data.readers import open_dataset

    root = require_file(args.dataset, "dataset folder")
    records = open_dataset(root, layout=args.layout, split=args.split)
    s = dataset_stats(records, regime=args.regime, seed=args.seed, mask_seconds=args.mask_seconds,
                      box_seconds=args.box_seconds, span_seconds=args.span_seconds, workers=args.workers)
    if args.json:
        print(json.dumps({"dataset": str(root), "layout": args.layout, "split": args.split, **s}, indent=2))
    else:
        print(format_stats(s, title=f"dataset {root} (layout {args.layout}, split {args.split or 'default'})"))
    return 0
