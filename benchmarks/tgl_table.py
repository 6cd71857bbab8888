"""TGL's ablation (paper 003: moment head, moment-guided sampling, MDP, OSS) on the synthetic benchmark's motion and
partial-time expressions with the MeViS protocol, or with --davis on the DAVIS sample (spans = the whole video).

Every row is the same model (frozen EfficientNet-Lite0 + frozen MiniLM, `tgl_synth`) trained for `--steps` steps
on the train split under the `spans` regime, with TGL's parts switched on and off:

    baseline   SimRVOS (no TGL part; uniform random windows)
    +moment    + moment head (relevance loss; the masks are the language path's everywhere)
    +MGS       + moment head + moment-guided sampling (clips straddle a span boundary)
    +MDP       + moment head + dual-path propagation (language path supervised on referred frames, propagation
               path on every frame; at inference the predicted relevance picks the path)
    +OSS       SimRVOS + object-level selective supervision (targets: the objects referred within the clip)
    +all       moment head + MGS + MDP + OSS (`tgl_synth` as packaged)

Scoring (one prediction pass per run): the MeViS protocol (all-frames: every frame counts, multi-object
expressions target the union, a no-target expression scores 1 on a frame only when the prediction is empty) on the
test split's motion, partial, multi-object and no-target (absent) expressions: J&F, J, F, J&F per kind; and the
temporal IoU of the predicted spans against the annotated ones (spans from the relevance > 0.5 for models with a
moment head, else the runs of frames with a non-empty mask). Rows with MDP are also scored with the language path
in every frame (`Predictor(mdp=False)`), to separate what the propagation does at inference from what its training
did to the language path, and with oracle moments (the annotated spans pick the path instead of the predicted
relevance; the moment head is replaced by the spans for that pass), to separate MDP from the moment head's errors. On the synthetic benchmark every scoring is also split by
the annotated spans (frames where the sentence holds vs the others: frame J&F, how often the frame is predicted
referred, how often its mask is non-empty; see `breakdown`). The frozen backbone's features are cached once in
memory (or on disk with --cache-dir) and shared by every run; each run's trained weights (frozen encoders left out)
are kept in OUT/runs/<run>/checkpoints/last.pt for later diagnosis.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tgl_table.py [--data data/synth] [--steps 1000] [--seeds 0]
        [--rows baseline moment mgs mdp oss all] [--out runs/tgl_table] [key=value config overrides ...]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tgl_table.py --davis [--steps 200]   # DAVIS leave-one-out folds
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tgl_table.py --smoke                 # seconds: tiny everything

Results go to OUT/results.json as each run finishes; a run already there (same row, seed, steps, fold) is skipped,
so a killed benchmark resumes where it stopped. A missing synthetic benchmark is generated (seed 0)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
import torch
from common import (DAVIS_SAMPLE, SMOKE_SYNTH, davis_folds, ensure_synthetic, load_results, markdown_table, run_grid,
                    start_tables)
from davis_crossval import SMOKE_FOLDS, TINY_MODEL, first_frames
from rvos.data.readers import open_dataset
from rvos.data.regimes import apply_regime
from rvos.data.spans import whole_video_spans
from rvos.evaluate import evaluate_predictions
from rvos.evaluate.predictions import MemoryPredictions
from rvos.infer.records import predict_records
from rvos.models import build_model
from rvos.train.config import MethodConfig, load_config
from rvos.train.feature_cache import build_feature_cache
from rvos.train.hooks import LogHook
from rvos.train.loop import Trainer, seed_all

DEFAULT_DATA = Path("data/synth")
KINDS = ("motion", "partial", "multi", "absent")  # the MeViS-like subset the table scores
ROWS = {  # name -> (label, moment head, MGS, MDP, OSS)
    "baseline": ("SimRVOS baseline", False, False, False, False),
    "moment": ("+ moment head", True, False, False, False),
    "mgs": ("+ moment head + moment-guided sampling", True, True, False, False),
    "mdp": ("+ moment head + MDP", True, False, True, False),
    "oss": ("+ OSS", False, False, False, True),
    "all": ("+ all (moment head, MGS, MDP, OSS)", True, True, True, True),
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="training config overrides key=value (e.g. loop.batch_size=8)")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="configurations to run")
    ap.add_argument("--steps", type=int, default=1000, help="optimizer steps per run (lr x0.1 at 75%%)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds; tables show the mean")
    ap.add_argument("--batch", type=int, default=4, help="clips per step")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="synthetic benchmark (made if missing)")
    ap.add_argument("--davis", action="store_true", help="leave-one-out folds over the DAVIS sample instead")
    ap.add_argument("--davis-data", type=Path, default=DAVIS_SAMPLE)
    ap.add_argument("--folds", nargs="+", default=None, metavar="SEQ", help="DAVIS held-out sequences (default all)")
    ap.add_argument("--out", type=Path, default=None, help="results.json and run logs (default runs/tgl_table)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="keep the feature cache on disk here (reused by the next run with the same size and videos)")
    ap.add_argument("--report", action="store_true", help="only print the tables from OUT/results.json")
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny model, tiny data, 3 steps")
    args = ap.parse_args(argv)
    args.size, args.eval_size, args.num_frames, args.max_frames = (192, 320), None, 5, 0
    if args.davis:
        args.size, args.eval_size = (240, 427), 240
    if args.smoke:
        args.steps, args.batch, args.num_frames, args.size = 3, 2, 3, (32, 48)
        args.eval_size, args.max_frames, args.folds = 32, 6, args.folds or SMOKE_FOLDS
        args.overrides = TINY_MODEL + list(args.overrides)
    return args


def base_config(args, root: Path):
    decay = [int(0.75 * args.steps)] if args.steps >= 4 else []
    return load_config("tgl_synth", [
        f"data.root={root}", f"data.clip.num_frames={args.num_frames}",
        f"data.clip.size=[{args.size[0]},{args.size[1]}]", f"optim.decay_steps={decay}", f"loop.steps={args.steps}",
        f"loop.batch_size={args.batch}", "loop.device=cpu", "loop.feature_cache=memory", "loop.checkpoint_every=0",
        "loop.eval_every=0", f"loop.log_every={max(1, args.steps // 40)}", "loop.progress=false", "loop.plot=false",
        *args.overrides])


def run_config(base, row: str, seed: int, davis: bool):
    _, moment, mgs, mdp, oss = ROWS[row]
    sampling = "moment" if mgs else ("random" if davis else "window")
    model = replace(base.model, moment=moment, propagation=mdp)
    if moment or mdp:
        method = MethodConfig("tgl", {**base.method.params, "moment": moment, "mdp": mdp})
    else:
        method = MethodConfig("simrvos", {"upsample_logits": base.method.params.get("upsample_logits", False)})
    clip = replace(base.data.clip, sampling=sampling, oss=oss)
    return replace(base, data=replace(base.data, regime="spans", clip=clip), model=model, method=method,
                   loop=replace(base.loop, seed=seed))


def kind_of(meta: dict, video: str, exp_id: str) -> str:
    return meta.get(video, {}).get("expressions", {}).get(str(exp_id), {}).get("kind", "?")


def score(model, test, kinds: dict, eval_size, mdp: bool | None) -> dict:
    """MeViS protocol J&F/J/F (overall and per kind) and temporal IoU on the scored expressions, plus the
    in-span / out-of-span breakdown (`breakdown`) on the synthetic benchmark."""
    keep = (lambda r, e: kinds[(r.video_id, e.exp_id)] in KINDS) if kinds else None
    scored = [r for r in (replace(r, expressions=[e for e in r.expressions if keep(r, e)]) for r in test)
              if r.expressions] if keep else list(test)
    preds = predict_records(model, scored, size=eval_size, mdp=mdp)
    source = MemoryPredictions(preds, scores=dict(preds.scores), presence=dict(preds.presence), spans=dict(preds.spans))
    mevis, ground = evaluate_predictions(scored, source, "all-frames"), evaluate_predictions(scored, source, "grounding")
    s, g = mevis.summary, ground.summary
    out = {"J&F": s["J&F"], "J": s["J"], "F": s["F"], "tIoU": g["tIoU"], "tIoU@0.5": g["tIoU@0.5"]}
    rows = mevis.tables["per-expression"]
    for k in KINDS if kinds else ():
        vals = [row["J&F"] for row in rows if kinds[(row["Video"], row["Expression"])] == k]
        out[f"J&F:{k}"] = statistics.mean(vals) if vals else None
        out[f"n:{k}"] = len(vals)
    for row in ground.tables["per-expression"]:
        if kinds:
            out.setdefault(f"tIoU:{kinds[(row['Video'], row['Expression'])]}", []).append(row["tIoU"])
    for k in [k for k in out if k.startswith("tIoU:")]:
        out[k] = statistics.mean(out[k])
    if kinds:
        out["breakdown"] = breakdown(scored, source, kinds)
    return out


def breakdown(records, source, kinds: dict) -> dict:
    """Per kind, frame-level means split by the annotated spans (`in` = frames where the sentence holds, `out` =
    the other scored frames): J&F ((J+F)/2 of the frame; a no-target frame 1 when the prediction is empty), the
    fraction of frames predicted referred (relevance > 0.5: the predicted spans) and the fraction with a non-empty
    predicted mask; and, over all frames of a kind, the fraction predicted referred among frames whose predicted
    mask is non-empty (`ref_mask`) and empty (`ref_empty`): how much the moment head follows the language path's
    mask rather than the sentence."""
    from rvos.data.spans import holds
    from rvos.evaluate.jf import frame_jf
    from rvos.evaluate.units import expression_units, gt_mask

    acc: dict = {}
    for r in records:
        exps = {e.exp_id: e for e in r.expressions}
        for unit in expression_units(r):
            e, k = exps[unit.key], kinds[(r.video_id, unit.key)]
            spans = source.spans(r.video_id, unit.key)  # None: the model has no moment head
            for t in unit.frames:
                pred = source.mask(r.video, unit, t)
                if unit.obj_ids:
                    jf = sum(frame_jf(pred, gt_mask(r, unit, t))) / 2
                else:
                    jf = float(not pred.any())
                side = "in" if (e.spans is None or holds(e.spans, t)) and e.positive else "out"
                full = bool(pred.any())
                parts = [(f"{side}:jf", jf), (f"{side}:mask", full)]
                if spans is not None:
                    ref = any(s <= t < x for s, x in spans)
                    parts += [(f"{side}:ref", ref), ("ref_mask" if full else "ref_empty", ref)]
                for key, v in parts:
                    a = acc.setdefault(k, {}).setdefault(key, [0.0, 0])
                    a[0] += float(v)
                    a[1] += 1
    return {k: {key: s / n for key, (s, n) in d.items()} | {f"n:{side}": d.get(f"{side}:jf", [0, 0])[1]
                                                           for side in ("in", "out")} for k, d in acc.items()}


class OracleMoment(torch.nn.Module):
    """Stands in for the moment head: the annotated spans as relevance logits (+9 where the sentence holds, -9
    elsewhere). The predictor decodes the sentences of a video in order, window after window, so call c is
    sentence c % K; each sentence's frames follow on from its previous window."""

    def __init__(self, spans: list[list[tuple[int, int]]], n_frames: int):
        super().__init__()
        self.logits = [[9.0 if any(s <= t < e for s, e in sp) else -9.0 for t in range(n_frames)] for sp in spans]
        self.pos, self.calls = [0] * len(spans), 0

    def forward(self, visual, sentence, mask_logits=None, scores=None):
        k, t = self.calls % len(self.logits), visual.shape[1]
        self.calls += 1
        out = torch.tensor(self.logits[k][self.pos[k]:self.pos[k] + t], dtype=visual.dtype, device=visual.device)
        self.pos[k] += t
        return out[None]


def score_oracle(model, test, kinds: dict, eval_size) -> dict:
    """The MeViS-protocol scores of MDP routed by the annotated spans (see OracleMoment)."""
    from rvos.infer.records import RlePredictions

    keep = (lambda r, e: kinds[(r.video_id, e.exp_id)] in KINDS) if kinds else (lambda r, e: True)
    moment, rles, spans = model.moment, {}, {}
    try:
        for r in test:
            exps = [e for e in r.expressions if keep(r, e)]
            if not exps:
                continue
            model.moment = OracleMoment([e.spans or [] for e in exps], len(r.video))
            preds = predict_records(model, [r], expressions=lambda rec, e, ids={e.exp_id for e in exps}: e.exp_id in ids,
                                    size=eval_size)
            rles.update(preds.rles)
            spans.update(preds.spans)
    finally:
        model.moment = moment
    merged = RlePredictions(rles)
    scored = [replace(r, expressions=[e for e in r.expressions if keep(r, e)]) for r in test]
    scored = [r for r in scored if r.expressions]
    source = MemoryPredictions(merged, spans=spans)
    s = evaluate_predictions(scored, source, "all-frames").summary
    out = {"J&F": s["J&F"], "J": s["J"], "F": s["F"]}
    if kinds:
        out["breakdown"] = breakdown(scored, source, kinds)
    return out


def train_and_score(args, base, row: str, seed: int, train, test, kinds, cache, run_dir: Path) -> dict:
    cfg = run_config(base, row, seed, args.davis)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, run_dir, records=train, features=cache, hooks=[LogHook()])
    last = trainer.fit()
    train_s = time.perf_counter() - t0
    trainer.save()  # compact (frozen encoders left out): RUN/checkpoints/last.pt, for later diagnosis
    t0 = time.perf_counter()
    out = {**score(trainer.model, test, kinds, args.eval_size, None), "final_loss": last.get("loss"),
           "final_parts": last, "train_s": train_s, "s_per_step": train_s / max(args.steps, 1)}
    if ROWS[row][3]:  # MDP rows: also the language path alone, and MDP routed by the annotated spans
        out["language_only"] = score(trainer.model, test, kinds, args.eval_size, False)
        out["oracle_moments"] = score_oracle(trainer.model, test, kinds, args.eval_size)
    out["eval_s"] = time.perf_counter() - t0
    return out


def load_data(args):
    """(jobs [(fold, train, test)], cache records, kinds {(video, exp id): kind}, description)."""
    if args.davis:
        records = open_dataset(args.davis_data, layout="davis")
        if args.max_frames:
            records = [first_frames(r, args.max_frames) for r in records]
        records = whole_video_spans(records)
        jobs = davis_folds(records, args.folds, args.batch)
        return jobs, records, {}, f"DAVIS sample leave-one-out ({len(jobs)} folds), spans = the whole video"
    root = args.data
    ensure_synthetic(root, dict(SMOKE_SYNTH, max_expressions=4, paraphrases=0, hard_negatives=0) if args.smoke else None)
    train = apply_regime(open_dataset(root, split="train"), "spans")
    test = apply_regime(open_dataset(root, split="test"), "spans")
    kinds = {}
    for split in ("train", "test"):
        meta = json.loads((root / "meta_expressions" / split / "meta_expressions.json").read_text())["videos"]
        for r in train if split == "train" else test:
            for e in r.expressions:
                kinds[(r.video_id, e.exp_id)] = kind_of(meta, r.video_id, e.exp_id)
    n = sum(kinds[(r.video_id, e.exp_id)] in KINDS for r in test for e in r.expressions)
    return [(None, train, test)], train, kinds, (f"synthetic benchmark {root} ({len(train)} train / {len(test)} test "
                                                 f"videos; {n} scored test expressions: {', '.join(KINDS)})")


def aggregate(results: dict, row: str, sub: str | None = None) -> dict | None:
    runs = [r if sub is None else r.get(sub) for k, r in results.items() if k.split("|")[0] == row]
    runs = [r for r in runs if r is not None]
    if not runs:
        return None
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    out = {k: statistics.mean(r[k] for r in runs if r.get(k) is not None) for k in keys
           if any(r.get(k) is not None for r in runs)}
    out["runs"] = len(runs)
    return out


def mean_breakdown(results: dict, row: str, sub: str | None) -> dict:
    """The runs' `breakdown` dicts of one row (or sub-scoring), averaged key by key."""
    runs = [r if sub is None else r.get(sub) for k, r in results.items() if k.split("|")[0] == row]
    runs = [r["breakdown"] for r in runs if r is not None and "breakdown" in r]
    out: dict = {}
    for kind in {k for b in runs for k in b}:
        keys = {c for b in runs for c in b.get(kind, {})}
        out[kind] = {c: statistics.mean(b[kind][c] for b in runs if c in b.get(kind, {})) for c in keys}
    return out


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def print_tables(args, results: dict) -> None:
    kinds = () if args.davis else KINDS
    header = ["setting", "J&F", "J", "F", "tIoU", *(f"J&F {k}" for k in kinds), "runs"]
    table = []
    for row in args.rows:
        for sub, suffix in ((None, ""), ("language_only", ", language path everywhere"),
                            ("oracle_moments", ", MDP routed by the annotated spans")):
            a = aggregate(results, row, sub)
            if a is None:
                continue
            table.append((ROWS[row][0] + suffix, pct(a.get("J&F")), pct(a.get("J")), pct(a.get("F")), pct(a.get("tIoU")),
                          *(pct(a.get(f"J&F:{k}")) for k in kinds), a["runs"]))
    what = "DAVIS sample, Ref-DAVIS all-frames, mean over folds" if args.davis else \
        "synthetic test split, MeViS protocol on motion/partial/multi/absent expressions"
    print(f"\nTGL ablation ({what}); % , mean over seeds {args.seeds}, {args.steps} steps")
    print(markdown_table(header, table))
    if not args.davis:
        header = ["setting", *(f"tIoU {k}" for k in KINDS)]
        rows = [(ROWS[r][0], *(pct(a.get(f"tIoU:{k}")) for k in KINDS)) for r in args.rows
                if (a := aggregate(results, r)) is not None]
        print("\ntemporal IoU of the predicted spans by kind (%)")
        print(markdown_table(header, rows))
        cols = [("partial", "in:jf"), ("partial", "out:jf"), ("partial", "in:ref"), ("partial", "out:ref"),
                ("motion", "out:jf"), ("absent", "out:jf"), ("absent", "out:ref"), ("absent", "ref_mask"),
                ("absent", "ref_empty")]
        header = ["setting", *(f"{k} {c}" for k, c in cols)]
        rows = []
        for row in args.rows:
            for sub, suffix in ((None, ""), ("language_only", ", language path everywhere"),
                                ("oracle_moments", ", MDP routed by the annotated spans")):
                b = mean_breakdown(results, row, sub)
                if b:
                    rows.append((ROWS[row][0] + suffix, *(pct(b.get(k, {}).get(c)) for k, c in cols)))
        if rows:
            print("\nframes split by the annotated spans (%; in = the sentence holds, out = the other scored frames; "
                  "jf = frame J&F, ref = predicted referred, ref_mask / ref_empty = predicted referred among frames "
                  "with a non-empty / empty predicted mask)")
            print(markdown_table(header, rows))


def describe(key: str, r: dict) -> str:
    """The line printed when a run finishes."""
    lang = r.get("language_only")
    extra = f"; language path everywhere J&F {100 * lang['J&F']:.1f}" if lang else ""
    return (f"{key}: J&F {100 * r['J&F']:.1f} (J {100 * r['J']:.1f}, F {100 * r['F']:.1f}), tIoU "
            f"{100 * r['tIoU']:.1f}{extra}; train {r['train_s']:.0f} s ({r['s_per_step']:.2f} s/step), "
            f"eval {r['eval_s']:.0f} s")


def main(argv=None) -> int:
    args = parse_args(argv)
    out, tmpdir = start_tables("tgl_table", args.smoke, args.out, args.davis)
    if tmpdir and args.data == DEFAULT_DATA:
        args.data = Path(tmpdir.name) / "data"
    path = out / "results.json"
    setup = {"data": str(args.davis_data if args.davis else args.data), "davis": args.davis, "size": list(args.size),
             "batch": args.batch, "num_frames": args.num_frames, "overrides": list(args.overrides)}
    results = load_results(path, setup)
    if results is None:
        return 2
    wanted = lambda runs: {k: v for k, v in runs.items() if f"|steps{args.steps}" in k  # noqa: E731
                           and int(k.split("|seed")[1].split("|")[0]) in args.seeds}
    if args.report:
        print_tables(args, wanted(results))
        return 0
    try:
        jobs, cache_records, kinds, what = load_data(args)
        base = base_config(args, args.data)
        seed_all(base.loop.seed)
        encoder = build_model(base.model)
        t0 = time.perf_counter()
        unique = list({r.video_id: r for r in cache_records}.values())
        cache = build_feature_cache(encoder, unique, tuple(base.data.clip.size), "cpu", args.cache_dir)
        cache_s = time.perf_counter() - t0
        del encoder
        print(f"data: {what}; {base.model.vision} + {base.model.text}, {args.steps} steps x {args.batch} clips x "
              f"T={args.num_frames} at {args.size[0]}x{args.size[1]}, seeds {args.seeds}; feature cache: {len(cache)} "
              f"frames (plain + flipped) in {cache_s:.1f} s", flush=True)
        run_grid(path, setup, results, args.rows, args.seeds, args.steps, jobs,
                 lambda row, seed, train, test, run_dir: train_and_score(
                     args, base, row, seed, train, test, kinds, cache, run_dir), describe)
        print_tables(args, wanted(results))
        print(f"\nresults: {path}")
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
