"""WSRVOS (text supervision only) against the same model trained with full masks and with mask + boxes (WRVOS), and
the paper's ablation, on the synthetic benchmark; with --davis, leave-one-out folds over the DAVIS sample.

Every row is the same model (`wsrvos_synth`: frozen EfficientNet-Lite0 + frozen MiniLM, multi-query head, feature
selection, expression scorer, fusion at stride 16), trained for `--steps` steps of `--batch` clips of 4 frames
drawn across the video, and scored on the test split with the all-frames protocol (J&F, J, F; A2D metrics too):
- WSRVOS rows: `rvos.methods.wsrvos` under the `text` regime; the augmentation comes from `rvos augment` files
  made here: `dataset` (the lists the synthetic benchmark ships, written from its ground truth: an MLLM that sees
  the video perfectly) or `rules` (the offline lexicon backend), both through the text-similarity filter
  (MiniLM cosine to the original >= 0.8).
- Full: `rvos.methods.wrvos` with LGCFS and BLCL off under `full` (dice + focal on every frame, the matched
  query's score and box terms). Weak_M+B: the same under `mask_box` with LGCFS on (the mask frame kept in every
  clip). Boxes: under `box` (box MIL on every frame, no mask).
"ann. s" is the annotation cost of the training records under the row's regime (rvos.data.cost: 79 s a mask,
7 s a box); the sentences are the same for every row and are counted, not priced.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wsrvos_tables.py --data data/synth --steps 250 [--tables main ablation]
        [--runs NAME ...] [--seeds 0] [--cache-dir DIR] [--out runs/wsrvos_tables] [key=value overrides ...]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wsrvos_tables.py --davis --steps 100      # DAVIS folds, rules
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wsrvos_tables.py --smoke                  # seconds: tiny everything
    ... --report                                               # print the tables from OUT/results.json

`--cache-dir` opens an existing disk feature cache READ-ONLY when its index matches (e.g. one another checkout
built); otherwise the features are cached in memory. Results go to OUT/results.json as each run finishes; a run
already there is skipped (a killed benchmark resumes)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

import rvos  # noqa: F401,E402  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
from common import (DAVIS_SAMPLE, SMOKE_SYNTH, davis_folds, ensure_synthetic, load_results,  # noqa: E402
                    markdown_table, run_grid, start_tables)
from davis_crossval import SMOKE_FOLDS, first_frames  # noqa: E402
from wrvos_tables import score, unique_full  # noqa: E402
from rvos.augment.cache import AugWriter, apply_augmentation, read_augmentation  # noqa: E402
from rvos.augment.rules import RulesBackend  # noqa: E402
from rvos.augment.run import DatasetBackend, augment_records  # noqa: E402
from rvos.augment.scorers import NoScorer, TextSimilarityScorer  # noqa: E402
from rvos.data.cost import annotation_cost  # noqa: E402
from rvos.data.readers import open_dataset  # noqa: E402
from rvos.data.regimes import MaskBoxes, apply_regime  # noqa: E402
from rvos.models import build_model  # noqa: E402
from rvos.train.config import MethodConfig, load_config  # noqa: E402
from rvos.train.feature_cache import FeatureCache, build_feature_cache, cache_frame  # noqa: E402
from rvos.train.hooks import LogHook  # noqa: E402
from rvos.train.loop import Trainer, seed_all  # noqa: E402

TINY = ["model.vision=tiny", "model.vision_pretrained=false", "model.vision_frozen=true", "model.text=tiny",
        "model.dim=16", "model.num_heads=2", "model.fpn_dims=[16,16,8]", "model.mask_dim=8", "model.dyn_hidden=8",
        "model.num_queries=3", "model.fusion_stride=32"]


@dataclass
class Spec:
    method: str = "wsrvos"
    regime: str = "text"
    params: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    augment: str = "dataset"  # wsrvos rows: which augmentation file (dataset | rules)
    keep_mask_frame: bool = False


RUNS: dict[str, Spec] = {
    "wsrvos": Spec(), "wsrvos_rules": Spec(augment="rules"),
    "wsrvos_masks": Spec(params={"token_classification": False, "fusion_source": "masks"}),
    "full": Spec("wrvos", "full", {"lgcfs": False, "blcl": False}),
    "mask_box": Spec("wrvos", "mask_box", {"lgcfs": True, "blcl": False}, keep_mask_frame=True),
    "box": Spec("wrvos", "box", {"lgcfs": False, "blcl": False}),
    "no_aug": Spec(params={"augmentation": False}), "no_sel": Spec(model={"selection": False}),
    "no_fusion": Spec(params={"fusion": False}), "no_rank": Spec(params={"ranking": False}),
}
TABLES = {
    "main": ("Text only (WSRVOS) vs full masks vs mask + boxes (WRVOS), same model", [
        ("WSRVOS, text (dataset's positives/negatives)", "wsrvos"), ("WSRVOS, text (rules backend)", "wsrvos_rules"),
        ("WSRVOS, query proposals only (no token maps; the chosen masks fused)", "wsrvos_masks"),
        ("Full masks (WRVOS method, LGCFS/BLCL off)", "full"), ("Weak_M+B (WRVOS method, + LGCFS)", "mask_box"),
        ("Boxes only (WRVOS method: box MIL on every frame)", "box")]),
    "ablation": ("Ablation (paper's components), text only", [
        ("WSRVOS (all parts)", "wsrvos"), ("w/o augmentation", "no_aug"), ("w/o selection", "no_sel"),
        ("w/o fusion", "no_fusion"), ("w/o ranking", "no_rank")]),
}
DAVIS_RUNS = ["wsrvos_rules", "full", "mask_box"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="training config overrides key=value")
    ap.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    ap.add_argument("--runs", nargs="+", default=None, choices=sorted(RUNS), help="only these rows")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--fusion-from", type=int, default=None, help="fusion warm-up steps (default: 40%% of --steps)")
    ap.add_argument("--data", type=Path, default=Path("runs/demo/data"))
    ap.add_argument("--davis", action="store_true")
    ap.add_argument("--davis-data", type=Path, default=DAVIS_SAMPLE)
    ap.add_argument("--folds", nargs="+", default=None)
    ap.add_argument("--cache-dir", type=Path, default=None, help="an existing disk feature cache, opened read-only")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    args.size, args.eval_size = (192, 320), None
    if args.davis:
        args.size, args.eval_size = (240, 427), 240
    if args.smoke:
        args.steps, args.batch, args.size, args.eval_size = 3, 2, (32, 48), 32
        args.folds = args.folds or SMOKE_FOLDS
        args.overrides = TINY + list(args.overrides)
    if args.fusion_from is None:
        args.fusion_from = max(1, int(0.4 * args.steps))
    return args


def open_cache_readonly(folder: Path, records, size, model) -> FeatureCache | None:
    """The disk cache in `folder` if its index covers exactly these records at this size and its first frame
    re-encodes to what is stored; memmaps opened read-only, nothing written there. None otherwise."""
    index = folder / "index.json"
    if not index.is_file():
        return None
    meta = json.loads(index.read_text())
    keys = [(r.video_id, i, f) for r in unique_full(records) for i in range(len(r.video)) for f in (False, True)]
    if meta.get("size") != list(size) or [tuple(k) for k in meta.get("keys", [])] != keys:
        return None
    levels = [np.load(folder / f"level{lvl}.npy", mmap_mode="r") for lvl in range(meta["levels"])]
    import torch

    rec = unique_full(records)[0]
    with torch.no_grad():
        model.eval()
        probe = model.encode_frames(cache_frame(rec, 0, size, False)[None])
    if not all(np.allclose(p[0].numpy().astype(np.float16), lvl[0], atol=1e-2) for p, lvl in zip(probe, levels)):
        return None
    return FeatureCache(levels, keys)


def augmentation_file(out: Path, kind: str, records, smoke: bool) -> Path:
    """OUT/aug_<kind>.jsonl over the training records (made once; resumed if cut short)."""
    path = out / f"aug_{kind}.jsonl"
    backend = DatasetBackend() if kind == "dataset" else RulesBackend(
        domain=[e.text for r in records for e in r.expressions if e.positive])
    scorer = NoScorer() if smoke else TextSimilarityScorer()
    header = {"backend": backend.name, "scorer": scorer.name, "threshold": 0.8, "positives": 6, "negatives": 12}
    t0 = time.perf_counter()
    with AugWriter(path, header) as w:
        stats = augment_records(unique_full(records), backend, scorer, w, 6, 12, 0.8)
    if stats.done:
        print(f"{path}: {stats.line()} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def base_config(args, root):
    return load_config("wsrvos_synth", [
        f"data.root={root}", f"data.clip.size=[{args.size[0]},{args.size[1]}]", "data.val_split=null",
        f"optim.decay_steps=[{int(0.75 * args.steps)}]", f"loop.steps={args.steps}", f"loop.batch_size={args.batch}",
        "loop.device=cpu", "loop.feature_cache=memory", "loop.checkpoint_every=0", "loop.eval_every=0",
        f"loop.log_every={max(1, args.steps // 25)}", "loop.progress=false", "loop.plot=false", *args.overrides])


def run_config(base, spec: Spec, seed: int, fusion_from: int):
    if spec.method == "wsrvos":
        method = MethodConfig("wsrvos", {**base.method.params, "fusion_from_step": fusion_from, **spec.params})
    else:
        method = MethodConfig("wrvos", {"upsample_logits": False, "lgcfs_variant": "full", **spec.params})
    clip = replace(base.data.clip, keep_mask_frame=spec.keep_mask_frame)
    return replace(base, data=replace(base.data, regime=spec.regime, clip=clip),
                   model=replace(base.model, **spec.model), method=method, loop=replace(base.loop, seed=seed))


def train_and_score(args, base, spec, seed, train_full, test, cache, boxes, aug: dict, run_dir: Path) -> dict:
    cfg = run_config(base, spec, seed, args.fusion_from)
    records = apply_regime(train_full, spec.regime, boxes=boxes)
    unique = unique_full(records)
    cost = annotation_cost(unique, boxes=boxes).seconds
    sentences = sum(e.positive for r in unique for e in r.expressions)
    coverage = None
    if spec.method == "wsrvos":
        _, entries = read_augmentation(aug[spec.augment])
        records, cov = apply_augmentation(records, entries)
        coverage = {"kept_positives": cov.positives_kept, "dropped_positives": cov.positives_dropped,
                    "negatives": cov.negatives}
    t0 = time.perf_counter()
    trainer = Trainer(cfg, run_dir, records=records, features=cache, hooks=[LogHook()])
    last = trainer.fit()
    trainer.save(run_dir / "final.pt")  # for benchmarks/wsrvos_diagnose.py (a few MB: frozen encoders left out)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = score(trainer.model, test, args.eval_size)
    return {**metrics, "regime": spec.regime, "annotation_s": cost, "sentences": sentences, "augmentation": coverage,
            "final": {k: v for k, v in last.items()}, "train_s": train_s, "s_per_step": train_s / max(args.steps, 1),
            "eval_s": time.perf_counter() - t0}


def load_jobs(args, tmp):
    if args.davis:
        records = open_dataset(args.davis_data, layout="davis")
        if args.smoke:
            records = [first_frames(r, 6) for r in records]
        jobs = davis_folds(records, args.folds, args.batch)
        return jobs, records, f"DAVIS sample leave-one-out ({len(jobs)} folds)"
    root = args.data
    ensure_synthetic(root, dict(SMOKE_SYNTH, max_expressions=3) if args.smoke else None)
    train, test = open_dataset(root, split="train"), open_dataset(root, split="test")
    return [(None, train, test)], train, f"synthetic benchmark {root} ({len(train)} train / {len(test)} test videos)"


def fmt(v):
    return "-" if v is None else f"{100 * v:.1f}"


def report(args, runs: dict) -> None:
    import statistics

    def agg(name):
        rows = [r for k, r in runs.items() if k.split("|")[0] == name and f"|steps{args.steps}" in k
                and int(k.split("|seed")[1].split("|")[0]) in args.seeds]
        if not rows:
            return None
        mean = {m: statistics.mean(r[m] for r in rows) for m in ("J&F", "J", "F", "annotation_s", "sentences")}
        return {**mean, "regime": rows[0]["regime"], "n": len(rows)}

    tables = {"davis": ("DAVIS sample, leave-one-out (mean over folds), rules backend for WSRVOS",
                        [("WSRVOS, text (rules)", "wsrvos_rules"), ("Full masks", "full"),
                         ("Weak_M+B (+ LGCFS)", "mask_box")])} if args.davis else {t: TABLES[t] for t in args.tables}
    for title, rows in tables.values():
        table = []
        for label, name in rows:
            a = agg(name)
            if a is not None:
                table.append((label, a["regime"], f"{a['annotation_s']:,.0f}", f"{a['sentences']:.0f}",
                              fmt(a["J&F"]), fmt(a["J"]), fmt(a["F"]), a["n"]))
        print(f"\n{title}; J&F/J/F in %, {args.steps} steps, seeds {args.seeds}")
        print(markdown_table(["setting", "regime", "ann. s", "sentences", "J&F", "J", "F", "runs"], table))


def describe(key: str, r: dict) -> str:
    """The line printed when a run finishes."""
    return (f"{key}: J&F {100 * r['J&F']:.1f} (J {100 * r['J']:.1f}, F {100 * r['F']:.1f}); ann. "
            f"{r['annotation_s']:,.0f} s; train {r['train_s']:.0f} s ({r['s_per_step']:.2f} s/step), "
            f"eval {r['eval_s']:.0f} s")


def main(argv=None) -> int:
    args = parse_args(argv)
    out, tmp = start_tables("wsrvos_tables", args.smoke, args.out, args.davis)
    if tmp and args.data == Path("runs/demo/data"):
        args.data = Path(tmp.name) / "data"
    path = out / "results.json"
    setup = {"davis": args.davis, "size": list(args.size), "batch": args.batch, "fusion_from": args.fusion_from,
             "overrides": list(args.overrides)}
    results = load_results(path, setup)
    if results is None:
        return 2
    if args.report:
        report(args, results)
        return 0
    try:
        jobs, cache_records, what = load_jobs(args, tmp)
        base = base_config(args, args.data)
        seed_all(0)
        encoder = build_model(base.model)
        t0 = time.perf_counter()
        cache = open_cache_readonly(args.cache_dir, cache_records, args.size, encoder) if args.cache_dir else None
        source = f"read-only {args.cache_dir}" if cache is not None else "memory"
        if cache is None:
            cache = build_feature_cache(encoder, unique_full(cache_records), args.size, "cpu")
        del encoder
        print(f"data: {what}; {args.steps} steps x {args.batch} clips; feature cache ({source}): {len(cache)} frames "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        aug = {k: augmentation_file(out, k, unique_full(cache_records), args.smoke)
               for k in (["rules"] if args.davis else ["dataset", "rules"])}
        names = DAVIS_RUNS if args.davis else list(dict.fromkeys(n for t in args.tables for _, n in TABLES[t][1]))
        names = [n for n in (args.runs or names) if n in names]  # --runs: these rows, in this order
        boxes = MaskBoxes()
        run_grid(path, setup, results, names, args.seeds, args.steps, jobs,
                 lambda name, seed, train, test, run_dir: train_and_score(
                     args, base, RUNS[name], seed, train, test, cache, boxes, aug, run_dir), describe)
        report(args, results)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
