"""Issue 13's numbers for one or more trained models on the synthetic benchmark's test split (or any dataset):
J&F of the positive expressions (all-frames protocol) overall and by expression kind, and on absent-object
sentences (the dataset's own plus one seeded unrelated-video sentence per expression, as R2-VOS pairs them, or
with `--r2-rule attributes` only sentences certainly false of the video: rvos.data.synth.truth): presence AUC, R
(also split into the dataset's own absent sentences and the unrelated-video ones), J&F&R, and the gated vs
ungated J&F of the positives.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grounding.py --checkpoint runs/objects/checkpoints/last.pt \
        --data data/synth [--split test] [--json out.json] [--size 288]
    # --size: the model sees frames with the shorter side resized to this (for a model trained at another size
    # than the videos' own, e.g. data.clip.size=[288,480] on the 192x320 benchmark)
    # train first, one run per seed (any packaged config and overrides), then score each:
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/grounding.py --train objects_synth --seeds 0 1 2 \
        --out runs/grounding --data data/synth [key=value ...]

Presence AUC: the probability that a positive (video, sentence) pair gets a higher presence score than a
negative one (Mann-Whitney U / (n_pos n_neg)). Ungated: the same model, same threshold, with the gate off (`Predictor(gate=False)`:
a sentence judged absent keeps its best masks), scored on the positives.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import command_line, machine_line, markdown_table  # noqa: E402


def presence_auc(pos: list[float], neg: list[float]) -> float:
    from scipy.stats import mannwhitneyu

    if not pos or not neg:
        return float("nan")
    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def score(checkpoint: Path, data: Path, split: str, r2_seed: int = 0, presence_threshold: float | None = None,
          r2_rule: str = "category", size: int | None = None) -> dict:
    from rvos.data.readers import open_dataset
    from rvos.demo import j_and_f_by_kind
    from rvos.evaluate import evaluate_predictions
    from rvos.evaluate.command import r2_eval_records
    from rvos.evaluate.predictions import MemoryPredictions
    from rvos.infer.records import predict_records
    from rvos.train.checkpoint import load_model_from_checkpoint

    from rvos.infer.predictor import default_presence_threshold

    model, _ = load_model_from_checkpoint(checkpoint)
    if presence_threshold is None:
        presence_threshold = default_presence_threshold(model)
    records = open_dataset(data, split=split)
    may_refer = None
    if r2_rule == "attributes":
        from rvos.data.synth.truth import SynthTruth

        truth = SynthTruth.load(data)
        if truth is None:
            raise SystemExit(f"--r2-rule attributes needs a synthetic benchmark with stored queries; {data} has none "
                             "(regenerate it with `rvos data synth`)")
        may_refer = truth.may_refer
    paired = r2_eval_records(records, "both", r2_seed, may_refer=may_refer)
    t0 = time.perf_counter()
    gated = predict_records(model, paired, presence_threshold=presence_threshold, size=size)
    pos_only = [r for r in (_subset(r, True) for r in paired) if r.expressions]
    ungated = predict_records(model, pos_only, gate=False, presence_threshold=presence_threshold, size=size)
    took = time.perf_counter() - t0
    src = MemoryPredictions(gated, scores=dict(gated.scores), presence=dict(gated.presence))
    jf = evaluate_predictions(pos_only, src, "all-frames")
    r2 = evaluate_predictions(paired, src, "r2")
    # R on each kind of negative: the dataset's own absent sentences, and the pairing's unrelated-video ones
    r_by = {name: evaluate_predictions([_keep(r, keep) for r in paired], src, "r2").summary["R"]
            for name, keep in (("own_absent", lambda e: not e.exp_id.startswith("neg-")),
                               ("unrelated", lambda e: e.exp_id.startswith("neg-")))}
    jf_ungated = evaluate_predictions(pos_only, MemoryPredictions(ungated), "all-frames")
    kinds = {}
    if (data / "synth.json").is_file():
        kinds = {k: v for k, v in j_and_f_by_kind(jf, data, split).items() if k != "absent"}
    pos = [gated.presence_scores[(r.video_id, e.exp_id)] for r in paired for e in r.expressions if e.positive]
    neg = [gated.presence_scores[(r.video_id, e.exp_id)] for r in paired for e in r.expressions if not e.positive]
    return {"checkpoint": str(checkpoint), "r2_rule": r2_rule, "presence_threshold": presence_threshold, "size": size, "J&F": jf.summary["J&F"], "J": jf.summary["J"], "F": jf.summary["F"],
            "kinds": kinds, "J&F_ungated": jf_ungated.summary["J&F"], "R": r2.summary["R"],
            "R_own_absent": r_by["own_absent"], "R_unrelated": r_by["unrelated"],
            "J&F&R": r2.summary["J&F&R"], "presence_auc": presence_auc(pos, neg), "positives": len(pos),
            "negatives": len(neg), "predict_seconds": took}


def _keep(record, negative):
    """The record with its positives and the negatives `negative(expression)` keeps."""
    from dataclasses import replace

    return replace(record, expressions=[e for e in record.expressions if e.positive or negative(e)])


def _subset(record, positives: bool):
    from dataclasses import replace

    return replace(record, expressions=[e for e in record.expressions if e.positive == positives])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, nargs="*", default=[])
    ap.add_argument("--train", default=None, help="a training config to run first, once per --seeds")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--out", type=Path, default=Path("runs/grounding"))
    ap.add_argument("--data", type=Path, default=Path("data/synth"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--r2-seed", type=int, default=0)
    ap.add_argument("--r2-rule", choices=("category", "attributes"), default="category",
                    help="unrelated-video negatives: R2-VOS's rule (no referred category in the video) or, on the "
                         "synthetic benchmark, also no object matching the sentence's noun phrase "
                         "(rvos.data.synth.truth: rules out true sentences that name no category)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--size", type=int, default=None,
                    help="resize the frames' shorter side to this for the model (default: the videos' own size)")
    ap.add_argument("--presence-threshold", type=float, nargs="*", default=[None],
                    help="operating points of the gate (one row each; the ungated column does not depend on it)")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args()
    print(machine_line())
    print(command_line())
    checkpoints = list(args.checkpoint)
    train_seconds = {}
    if args.train:
        from rvos.train.config import load_config
        from rvos.train.loop import train

        for seed in args.seeds:
            run = args.out / f"seed{seed}"
            cfg = load_config(args.train, [f"data.root={args.data}", f"loop.seed={seed}", *args.overrides])
            t0 = time.perf_counter()
            train(cfg, run, resume=(run / "checkpoints" / "last.pt").is_file() or (run / "objects").is_dir())
            train_seconds[str(run / "checkpoints" / "last.pt")] = time.perf_counter() - t0
            checkpoints.append(run / "checkpoints" / "last.pt")
    rows, results = [], []
    for c, thr in [(c, thr) for c in checkpoints for thr in args.presence_threshold]:
        res = score(c, args.data, args.split, args.r2_seed, thr, args.r2_rule, args.size)
        res["train_seconds"] = train_seconds.get(str(c))
        results.append(res)
        kinds = " ".join(f"{k} {v[1]:.3f}" for k, v in res["kinds"].items())
        rows.append([c, f"{res['presence_threshold']:g}", f"{res['J&F']:.3f}", f"{res['J&F_ungated']:.3f}", f"{res['presence_auc']:.3f}",
                     f"{res['R']:.3f} ({res['R_own_absent']:.3f} / {res['R_unrelated']:.3f})", f"{res['J&F&R']:.3f}", kinds,
                     "" if res["train_seconds"] is None else f"{res['train_seconds'] / 60:.1f}"])
        print(json.dumps(res, default=float), flush=True)
    print(markdown_table(["checkpoint", "presence threshold", "J&F (gated)", "J&F ungated", "presence AUC",
                          "R (own absent / unrelated)", "J&F&R", "J&F by kind", "train min"], rows))
    if len(results) > 1:
        for key in ("J&F", "J&F_ungated", "presence_auc", "R"):
            v = np.array([r[key] for r in results])
            print(f"{key}: mean {v.mean():.3f}, min {v.min():.3f}, max {v.max():.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
