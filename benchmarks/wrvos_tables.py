"""WRVOS's tables (Tables I, III/IV, V, VI, VIII, X, XII of "Learning RVOS from Weak Annotation") on the synthetic
benchmark, or with --davis as leave-one-out cross-validation over the DAVIS sample.

Every configuration is the same model (frozen EfficientNet-Lite0 + frozen MiniLM, `wrvos_synth`) trained for
`--steps` steps by `rvos.methods.wrvos.WRVOS` with terms switched on and off; "SimRVOS" rows are WRVOS with LGCFS
and BLCL off (eq. 20: dice + focal on mask frames, box MIL on box frames; on the full regime that is SimRVOS) and
a model without the BLCL branch. The frozen backbone's features (every train frame, plain and flipped) are cached
once in memory and shared by every run. Each run is scored on the test split (all-frames protocol: J&F, J, F) and
with the A2D frame metrics on the same predictions (P@0.5..0.9, COCO mAP@[.5:.95], the paper's mAP = mean of
P@[0.5:0.95:0.05], overall and mean IoU). "ann. h" is the annotation cost of the training records under the run's
regime (rvos.data.cost: 79 s a mask, 7 s a box). Two-step (Table XII): rvos.methods.two_step.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wrvos_tables.py [--data runs/demo/data] [--steps 1600]
        [--seeds 0] [--tables I III V VI VIII X XII] [--out runs/wrvos_tables] [--plot docs/wrvos_tradeoff.png]
        [--pseudo-from-step N] [key=value config overrides ...]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wrvos_tables.py --davis [--steps 200]   # DAVIS-sample folds
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/wrvos_tables.py --smoke                 # seconds: tiny everything

Results go to OUT/results.json as each run finishes; a run already there (same name, seed, fold, steps) is
skipped, so a killed benchmark resumes where it stopped. Per-run logs: OUT/runs/<run>/metrics.jsonl. A missing
synthetic benchmark is generated (`rvos data synth DATA --seed 0`)."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
from common import (DAVIS_SAMPLE, SMOKE_SYNTH, davis_folds, ensure_synthetic, load_results, markdown_table, run_grid,
                    start_tables)
from davis_crossval import SMOKE_FOLDS, TINY_MODEL, first_frames
from rvos.data.cost import annotation_cost
from rvos.data.readers import open_dataset
from rvos.data.regimes import MaskBoxes, apply_regime
from rvos.infer.model_eval import evaluate_model_protocols
from rvos.methods.two_step import pseudo_mask_quality, train_two_step
from rvos.models import build_model
from rvos.train.config import MethodConfig, load_config
from rvos.train.feature_cache import build_feature_cache
from rvos.train.hooks import LogHook
from rvos.train.loop import Trainer, seed_all


DEFAULT_DATA = Path("runs/demo/data")  # where `rvos demo` writes the synthetic benchmark


@dataclass
class Spec:
    """One training configuration: regime, WRVOS switches (method params), BLCL branch, two-step or not."""

    regime: str = "mask_box"
    params: dict = field(default_factory=dict)
    regime_seed: int = 0
    two_step: bool = False

    @property
    def blcl(self) -> bool:
        return self.params.get("blcl", False)


def _spec(regime="mask_box", lgcfs=False, blcl=False, regime_seed=0, two_step=False, **params) -> Spec:
    return Spec(regime, {"lgcfs": lgcfs, "blcl": blcl, **params}, regime_seed, two_step)


OURS = dict(lgcfs=True, blcl=True)
RUNS: dict[str, Spec] = {
    "simrvos_full": _spec("full"), "simrvos_box": _spec("box"), "simrvos_mask": _spec("mask"),
    "simrvos_mask_box": _spec(), "lgcfs": _spec(lgcfs=True), "ours": _spec(**OURS),
    "lgcfs_first_frame": _spec(lgcfs=True, lgcfs_variant="first_frame"),
    "lgcfs_avg": _spec(lgcfs=True, lgcfs_variant="first_frame_others_avg"),
    "blcl_lv": _spec(**OURS, blcl_cc=False, pseudo=False), "blcl_lv_pseudo": _spec(**OURS, blcl_cc=False),
    "blcl_cc": _spec(**OURS, blcl_lv=False, pseudo=False), "blcl_cc_pseudo": _spec(**OURS, blcl_lv=False),
    "blcl_lv_cc": _spec(**OURS, pseudo=False),
    **{f"ours_random{k}": _spec("mask_box_random", regime_seed=k, **OURS) for k in (1, 2, 3)},
    **{f"ours_dth{d}": _spec(**OURS, d_th=d) for d in (0.7, 0.8, 0.95)},
    "two_step": _spec(two_step=True),
}
SHORT = ["J&F", "J", "F"]
LONG = SHORT + ["P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "mAP", "mAP_paper", "overall_iou", "mean_iou"]
TABLES: dict[str, tuple[str, list[str], list[tuple[str, str]]]] = {  # id -> (title, metrics, [(row label, run)])
    "I": ("Table I: annotation regimes (Full, Weak_B, Weak_M, Weak_M+B)", SHORT, [
        ("SimRVOS, Full", "simrvos_full"), ("SimRVOS, Weak_B", "simrvos_box"), ("SimRVOS, Weak_M", "simrvos_mask"),
        ("SimRVOS, Weak_M+B", "simrvos_mask_box"), ("SimRVOS+Ours, Weak_M+B", "ours")]),
    "III": ("Tables III/IV: main components (Weak_M+B)", LONG, [
        ("SimRVOS", "simrvos_mask_box"), ("SimRVOS+LGCFS", "lgcfs"), ("SimRVOS+LGCFS+BLCL", "ours")]),
    "V": ("Table V: LGCFS settings (Weak_M+B, no BLCL)", LONG, [
        ("w/o LGCFS", "simrvos_mask_box"), ("first frame", "lgcfs_first_frame"),
        ("first frame + others w/ avg", "lgcfs_avg"), ("first frame + others w/o avg", "lgcfs")]),
    "VI": ("Table VI: BLCL settings (on SimRVOS+LGCFS, Weak_M+B)", LONG, [
        ("none", "lgcfs"), ("LV", "blcl_lv"), ("LV + pseudo", "blcl_lv_pseudo"), ("CC", "blcl_cc"),
        ("CC + pseudo", "blcl_cc_pseudo"), ("LV + CC", "blcl_lv_cc"), ("LV + CC + pseudo", "ours")]),
    "VIII": ("Table VIII: temporal position of the mask (random mask frame, 3 draws)", SHORT, [
        ("SimRVOS+Ours (first appearance)", "ours"), ("1st try", "ours_random1"), ("2nd try", "ours_random2"),
        ("3rd try", "ours_random3")]),
    "X": ("Table X: BLCL threshold d_th", SHORT, [
        ("0.7", "ours_dth0.7"), ("0.8", "ours_dth0.8"), ("0.9", "ours"), ("0.95", "ours_dth0.95")]),
    "XII": ("Table XII: two-step baseline", SHORT, [
        ("SimRVOS (Weak_M+B)", "simrvos_mask_box"), ("SimRVOS+Two-Step", "two_step"), ("SimRVOS+Ours", "ours")]),
}
PLOT_RUNS = ["simrvos_full", "simrvos_box", "simrvos_mask", "simrvos_mask_box", "lgcfs", "ours", "two_step"]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("overrides", nargs="*", help="training config overrides key=value (e.g. loop.batch_size=8)")
    ap.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES), help="tables to run")
    ap.add_argument("--steps", type=int, default=1600, help="optimizer steps per run (lr x0.1 at 75%%)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds; tables show the mean")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="synthetic benchmark (made if missing)")
    ap.add_argument("--out", type=Path, default=None, help="results.json and run logs (default runs/wrvos_tables)")
    ap.add_argument("--plot", type=Path, default=None,
                    help="J&F vs annotation hours PNG (default docs/wrvos_tradeoff.png)")
    ap.add_argument("--pseudo-from-step", type=int, default=-1,
                    help="BLCL pseudo masks from this step (default -1: from epoch 1, as the paper)")
    ap.add_argument("--batch", type=int, default=4, help="clips per step")
    ap.add_argument("--davis", action="store_true", help="leave-one-out folds over the DAVIS sample instead")
    ap.add_argument("--davis-data", type=Path, default=DAVIS_SAMPLE)
    ap.add_argument("--folds", nargs="+", default=None, metavar="SEQ", help="DAVIS held-out sequences (default all)")
    ap.add_argument("--runs", nargs="+", default=None, choices=sorted(RUNS),
                    help="train only these configurations of the chosen tables (e.g. more seeds of a few rows)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="keep the feature cache on disk here (reused by the next run with the same size and videos)")
    ap.add_argument("--report", action="store_true",
                    help="only print the tables and draw the plot from OUT/results.json (runs not there are left out)")
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny model, tiny data, 3 steps")
    args = ap.parse_args(argv)
    args.size, args.eval_size, args.num_frames, args.max_frames = (192, 320), None, 5, 0
    if args.davis:
        args.size, args.eval_size = (240, 427), 240
    if args.smoke:
        args.steps, args.batch, args.num_frames, args.size = 3, 2, 3, (32, 48)
        args.eval_size, args.max_frames, args.folds = 32, 6, args.folds or SMOKE_FOLDS
        args.pseudo_from_step = 1 if args.pseudo_from_step < 0 else args.pseudo_from_step
        args.overrides = TINY_MODEL + list(args.overrides)
    return args


def base_config(args, root: Path):
    decay = [int(0.75 * args.steps)] if args.steps >= 4 else []
    return load_config("wrvos_synth", [
        f"data.root={root}", f"data.clip.num_frames={args.num_frames}",
        f"data.clip.size=[{args.size[0]},{args.size[1]}]", *(["data.clip.sampling=random"] if args.davis else []),
        f"optim.decay_steps={decay}", f"loop.steps={args.steps}",
        f"loop.batch_size={args.batch}", "loop.device=cpu", "loop.feature_cache=memory", "loop.checkpoint_every=0",
        "loop.eval_every=0", f"loop.log_every={max(1, args.steps // 40)}", "loop.progress=false", "loop.plot=false",
        *args.overrides])


def run_config(base, spec: Spec, seed: int, pseudo_from_step: int):
    params = {**base.method.params, **spec.params}
    if pseudo_from_step >= 0:
        params["pseudo_from_step"] = pseudo_from_step
    return replace(base, data=replace(base.data, regime=spec.regime, regime_seed=spec.regime_seed),
                   model=replace(base.model, blcl=spec.blcl), method=MethodConfig("wrvos", params),
                   loop=replace(base.loop, seed=seed))


def score(model, records, eval_size) -> dict:
    """J&F, J, F (all-frames) and the A2D frame metrics from one prediction pass."""
    res = evaluate_model_protocols(model, records, {"all-frames": True, "a2d": True}, size=eval_size)
    jf, a2d = res["all-frames"].summary, res["a2d"].summary
    ious = [row["IoU"] for row in res["a2d"].tables["per-frame"]]
    paper_map = statistics.mean(sum(i > k / 100 for i in ious) / len(ious) for k in range(50, 100, 5))
    precision = {f"P@{k}": a2d[f"P@{k}"] for k in (0.5, 0.6, 0.7, 0.8, 0.9)}
    return {"J&F": jf["J&F"], "J": jf["J"], "F": jf["F"], **precision,
            "mAP": a2d["mAP"], "mAP_paper": paper_map, "overall_iou": a2d["overall_iou"], "mean_iou": a2d["mean_iou"]}


def train_and_score(args, base, spec: Spec, seed: int, train_full, test, cache, boxes, run_dir: Path) -> dict:
    cfg = run_config(base, spec, seed, args.pseudo_from_step)
    records = apply_regime(train_full, spec.regime, seed=spec.regime_seed, boxes=boxes)
    unique = list({r.video_id: r for r in records}.values())  # DAVIS folds repeat the training videos
    cost = annotation_cost(unique, boxes=boxes).seconds
    t0 = time.perf_counter()
    extra = {}
    if spec.two_step:
        res = train_two_step(cfg, run_dir, records=records, features=cache, hooks=lambda: [LogHook()],
                             size=args.eval_size)
        model, last = res.model, res.step2_parts
        extra["pseudo_iou"] = pseudo_mask_quality(res.pseudo_records, unique_full(train_full))["mean_iou"]
    else:
        trainer = Trainer(cfg, run_dir, records=records, features=cache, hooks=[LogHook()])
        last = trainer.fit()
        model = trainer.model
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = score(model, test, args.eval_size)
    steps = args.steps * (2 if spec.two_step else 1)
    return {**metrics, **extra, "regime": spec.regime, "annotation_s": cost, "final_loss": last.get("loss"),
            "train_s": train_s, "s_per_step": train_s / max(steps, 1), "eval_s": time.perf_counter() - t0}


def unique_full(records):
    return list({r.video_id: r for r in records}.values())


def load_data(args):
    """(jobs: [(fold or None, train records (full GT), test records)], all records for the cache, description)."""
    if args.davis:
        records = open_dataset(args.davis_data, layout="davis")
        if args.max_frames:
            records = [first_frames(r, args.max_frames) for r in records]
        jobs = davis_folds(records, args.folds, args.batch)
        return jobs, records, f"DAVIS sample leave-one-out ({len(jobs)} folds)"
    root = args.data
    ensure_synthetic(root, dict(SMOKE_SYNTH, max_expressions=3, paraphrases=0, hard_negatives=0) if args.smoke else None)
    train, test = open_dataset(root, split="train"), open_dataset(root, split="test")
    return [(None, train, test)], train, f"synthetic benchmark {root} ({len(train)} train / {len(test)} test videos)"


def fmt(v, pct=True) -> str:
    return "-" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.1f}")


def aggregate(results: dict, name: str) -> dict | None:
    rows = [r for k, r in results.items() if k.split("|")[0] == name]
    if not rows:
        return None
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and v is not None]
    out = {k: statistics.mean(r[k] for r in rows if r.get(k) is not None) for k in keys}
    out["n"], out["regime"] = len(rows), rows[0]["regime"]
    return out


def print_tables(args, results: dict) -> None:
    for tid in args.tables:
        title, metrics, rows = TABLES[tid]
        table = []
        for label, run in rows:
            a = aggregate(results, run)
            if a is None:
                continue
            cells = [fmt(a.get(m)) for m in metrics]
            table.append((label, a["regime"], f"{a['annotation_s'] / 3600:.2f}", *cells, a["n"]))
        print(f"\n{title}; J/F/P/mAP/IoU in %, mean over {len(args.seeds)} seed(s)"
              f"{' and the DAVIS folds' if args.davis else ''}")
        print(markdown_table(["setting", "regime", "ann. h", *metrics, "runs"], table))
    two = aggregate(results, "two_step")
    if two is not None and "pseudo_iou" in two:
        print(f"\ntwo-step pseudo masks: mean IoU {100 * two['pseudo_iou']:.1f}% against the dense training masks")


def plot(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in PLOT_RUNS:
        a = aggregate(results, name)
        if a is None:
            continue
        hours = max(a["annotation_s"] / 3600, 1e-3)
        ax.scatter(hours, 100 * a["J&F"], s=36)
        ax.annotate(f"{name} ({a['regime']})", (hours, 100 * a["J&F"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.3, 2, 100 rather than 3x10^-1
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("annotation hours of the training set (79 s a mask, 7 s a box)")
    ax.set_ylabel("J&F (%)")
    ax.set_title("WRVOS: accuracy vs annotation cost")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def report(args, runs: dict, path: Path, plot_path: Path) -> None:
    """Tables and plot of the runs of this --steps and --seeds."""
    wanted = {k: v for k, v in runs.items()
              if f"|steps{args.steps}" in k and int(k.split("|seed")[1].split("|")[0]) in args.seeds}
    print_tables(args, wanted)
    plot(plot_path, wanted)
    print(f"\nresults: {path}; plot: {plot_path}")


def describe(key: str, r: dict) -> str:
    """The line printed when a run finishes."""
    return (f"{key}: J&F {100 * r['J&F']:.1f} (J {100 * r['J']:.1f}, F {100 * r['F']:.1f}), mAP "
            f"{100 * r['mAP']:.1f}, ann. {r['annotation_s'] / 3600:.2f} h; train {r['train_s']:.0f} s "
            f"({r['s_per_step']:.2f} s/step), eval {r['eval_s']:.0f} s")


def main(argv=None) -> int:
    args = parse_args(argv)
    out, tmpdir = start_tables("wrvos_tables", args.smoke, args.out, args.davis)
    source = f"DAVIS {args.davis_data} folds {args.folds or 'all'}" if args.davis else f"synthetic {args.data}"
    if tmpdir and args.data == DEFAULT_DATA:  # smoke data is tiny: never where the real benchmark is expected
        args.data, source = Path(tmpdir.name) / "data", "synthetic, tiny (smoke)"
    plot_path = args.plot or (out / "wrvos_tradeoff.png" if args.smoke else Path("docs/wrvos_tradeoff.png"))
    path = out / "results.json"
    setup = {"data": source, "size": list(args.size), "batch": args.batch, "num_frames": args.num_frames,
             "pseudo_from_step": args.pseudo_from_step, "overrides": list(args.overrides)}
    results = load_results(path, setup)
    if results is None:
        return 2
    if args.report:  # tables and plot from what results.json holds, no training
        report(args, results, path, plot_path)
        return 0
    try:
        jobs, cache_records, what = load_data(args)
        base = base_config(args, args.data)
        seed_all(base.loop.seed)
        encoder = build_model(base.model)
        t0 = time.perf_counter()
        cache = build_feature_cache(encoder, unique_full(cache_records), tuple(base.data.clip.size), "cpu",
                                    args.cache_dir)
        cache_s = time.perf_counter() - t0
        del encoder
        print(f"data: {what}; {base.model.vision} + {base.model.text}, {args.steps} steps x {args.batch} clips x "
              f"T={args.num_frames} at {args.size[0]}x{args.size[1]}, seeds {args.seeds}; feature cache: {len(cache)} "
              f"frames (plain + flipped) in {cache_s:.1f} s", flush=True)
        names = list(dict.fromkeys(run for t in args.tables for _, run in TABLES[t][2]))
        names = [n for n in names if args.runs is None or n in args.runs]
        boxes = MaskBoxes()
        run_grid(path, setup, results, names, args.seeds, args.steps, jobs,
                 lambda name, seed, train, test, run_dir: train_and_score(
                     args, base, RUNS[name], seed, train, test, cache, boxes, run_dir), describe)
        report(args, results, path, plot_path)
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
