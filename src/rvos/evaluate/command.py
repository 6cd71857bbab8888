"""`rvos eval PRED --dataset ROOT [--layout L] [--split S] [--protocol P] [--out DIR]`: score predictions;
`rvos eval --checkpoint C --dataset ROOT ...`: run the model on the split, then score it.

PRED is a folder of PNGs (`PRED/<video>/<frame>.png` label PNGs, value = object id, DAVIS style; or
`PRED/<video>/<exp_id>/<frame>.png` binary masks, Ref-YouTube-VOS submission style) or an RLE JSON (format in
`rvos.evaluate.predictions`). The ground truth is read with `rvos.data.readers.open_dataset`. Prints the global
numbers and the per-sequence table; with --out writes global_results.csv, <table>_results.csv and results.json.

`--protocol r2` (R2-VOS section 5.1, R2-YouTube-VOS construction) scores the split's expressions each on its own
video and on one unrelated video: `rvos.data.negatives.r2_records(records, seed=--r2-seed)` (a seeded
derangement of the videos; an expression whose assigned video holds its category or its text moves to another
unrelated one). `--r2-negatives` picks the negatives: "both" (default: the pairing's plus the dataset's own
absent-object expressions, e.g. the synthetic benchmark's), "pairing" (the pairing's only, as R2-YouTube-VOS),
"dataset" (the dataset's own only, no pairing). A negative pair's expression id is
`neg-<source video>-<source exp_id>` on the video it is queried on, so a prediction folder for r2 must hold
`PRED/<video>/neg-<source video>-<exp_id>/<frame>.png` (or those keys in an RLE JSON) for the same seed:
`rvos eval --checkpoint C --protocol r2 --r2-seed S --save-predictions PRED` writes exactly that layout.
With --checkpoint, a model whose presence head was not trained (r2vos with consensus: false) is not gated.

`--submission ytvos|mevis OUT.zip` (with --checkpoint) writes the zip the benchmark's server takes
(`rvos.infer.submission`: `Annotations/<video>/<exp_id>/<frame>.png` for Ref-YouTube-VOS, the video folders
at the top for MeViS) with every expression of the split, no-target ones included. Where the split has ground
truth it is also scored, over those same expressions: `rvos eval OUT.zip --dataset ROOT` gives the same numbers.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rvos.errors import ConfigError, DatasetError
from rvos.evaluate.protocols import PROTOCOLS, default_workers

LAYOUT_CHOICES = ("auto", "ytvos", "davis", "mevis", "a2d", "jhmdb")
DEFAULT_PROTOCOL = {"davis": "davis-semi", "a2d": "a2d", "jhmdb": "a2d"}  # others: all-frames
R2_NEGATIVES = ("both", "pairing", "dataset")


def r2_eval_records(records, negatives: str = "both", seed: int = 0, may_refer=None) -> list:
    """The records the r2 protocol scores (see the module docstring): positives plus the chosen negatives.
    `may_refer`: a finer rule for the pairing than categories (rvos.data.negatives; rvos.data.synth.truth)."""
    from dataclasses import replace

    from rvos.data.negatives import r2_records

    if negatives not in R2_NEGATIVES:
        raise ConfigError(f"r2 negatives must be one of {R2_NEGATIVES}, got {negatives!r}")
    records = list(records)
    if negatives == "dataset":
        return records
    if negatives == "pairing":
        records = [replace(r, expressions=[e for e in r.expressions if e.positive]) for r in records]
    return r2_records(records, seed=seed, may_refer=may_refer)


def check_r2_predictions(records, predictions, seed: int) -> None:
    """A clear error when a prediction folder / RLE JSON lacks the pairing's negatives (rather than a missing
    PNG deep in scoring): they are named `neg-<source video>-<exp_id>` and depend on the --r2-seed."""
    from rvos.evaluate.predictions import (ExpressionFolderPredictions, PaletteFolderPredictions, RLEJsonPredictions,
                                           ZipPredictions)

    if isinstance(predictions, PaletteFolderPredictions):
        raise ConfigError("the r2 protocol needs expression-level predictions (PRED/<video>/<exp_id>/<frame>.png or "
                          "an RLE JSON): one label PNG per frame cannot say what a negative pair predicts")
    missing = []
    for r in records:
        for e in r.expressions:
            if e.positive:
                continue
            if isinstance(predictions, ExpressionFolderPredictions):
                ok = (predictions.root / r.video_id / e.exp_id).is_dir()
            elif isinstance(predictions, RLEJsonPredictions):
                ok = (r.video_id, e.exp_id) in predictions.entries
            elif isinstance(predictions, ZipPredictions):
                ok = (r.video_id, e.exp_id) in predictions.expressions
            else:
                ok = True
            if not ok:
                missing.append(f"{r.video_id}/{e.exp_id}")
    if missing:
        raise DatasetError(
            f"the predictions lack {len(missing)} negative pairs of the r2 protocol (--r2-seed {seed}), e.g. "
            f"{', '.join(missing[:3])}: write them with `rvos eval --checkpoint C --protocol r2 --r2-seed {seed} "
            "--save-predictions PRED`, or score only the dataset's own negatives with --r2-negatives dataset")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, nargs="?", default=None,
                        help="folder of predicted PNGs, an RLE .json or a submission .zip")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="instead of PRED: segment every expression of the split with this model, then score")
    parser.add_argument("--device", default="cpu", help="with --checkpoint: cpu, cuda or cuda:N")
    parser.add_argument("--threshold", type=float, default=0.5, help="with --checkpoint: mask probability threshold")
    parser.add_argument("--presence-threshold", type=float, default=None,
                        help="with --checkpoint of a model with a presence head: judged present when sigmoid(A) >= this (default: the model's own)")
    parser.add_argument("--save-predictions", type=Path, default=None,
                        help="with --checkpoint: also write the predicted PNGs (OUT/<video>/<exp_id>/<frame>.png)")
    parser.add_argument("--submission", nargs=2, metavar=("FORMAT", "OUT.zip"), default=None,
                        help="with --checkpoint: write the benchmark's submission zip, FORMAT ytvos (Ref-YouTube-VOS) "
                             "or mevis (MeViS), with every expression of the split")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset root (ground truth)")
    parser.add_argument("--layout", default="auto", choices=LAYOUT_CHOICES, help="dataset layout (default: detect)")
    parser.add_argument("--split", default=None, help="dataset split (default: the layout's evaluation split)")
    parser.add_argument("--protocol", default=None, choices=PROTOCOLS,
                        help="scoring protocol (default: davis-semi for davis, a2d for a2d/jhmdb, else all-frames)")
    parser.add_argument("--r2-seed", type=int, default=0, help="with --protocol r2: seed of the negative pairing")
    parser.add_argument("--r2-negatives", default="both", choices=R2_NEGATIVES,
                        help="with --protocol r2: the pairing's negatives, the dataset's own absent-object "
                             "expressions, or both (default)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the CSV and JSON results")
    parser.add_argument("--workers", type=int, default=default_workers(), help="threads decoding and scoring frames")


def run(args: argparse.Namespace) -> int:
    from rvos.data.readers import detect_layout, open_dataset
    from rvos.evaluate.predictions import open_predictions
    from rvos.evaluate.protocols import evaluate_predictions

    start = time.perf_counter()
    if (args.pred is None) == (args.checkpoint is None):
        raise ConfigError("give either PRED (predicted PNGs or an RLE JSON) or --checkpoint, not both or neither")
    layout = detect_layout(args.dataset) if args.layout == "auto" else args.layout
    protocol = args.protocol or DEFAULT_PROTOCOL.get(layout, "all-frames")
    if args.submission is not None:
        return _run_submission(args, layout, protocol, start)
    if args.checkpoint is not None:
        from rvos.infer.command import gate_for_config, load_model
        from rvos.infer.model_eval import evaluate_model

        model, cfg = load_model(args.checkpoint, args.device)  # fail on a bad checkpoint before reading the dataset
        from rvos.infer.model_info import checkpoint_lines, same_data_note
        from rvos.train.checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.checkpoint)
        print("\n".join(checkpoint_lines(args.checkpoint, ckpt=ckpt)))  # what the model was trained on
        records = open_dataset(args.dataset, layout, args.split)
        note = same_data_note(ckpt, args.dataset, records)
        if note:
            print(note)
        if protocol == "r2":
            records = r2_eval_records(records, args.r2_negatives, args.r2_seed)
        gate = gate_for_config(cfg)
        if gate is False:
            print("presence gate off: this model's presence head was not trained (r2vos with consensus: false)")
        result = evaluate_model(model, records, protocol, out=args.save_predictions, device=args.device,
                                progress=True, workers=args.workers, gate=gate,
                                threshold=args.threshold, presence_threshold=args.presence_threshold)
    else:
        predictions = open_predictions(args.pred)  # fail on a bad PRED before reading the dataset
        records = open_dataset(args.dataset, layout, args.split)
        if protocol == "r2":
            records = r2_eval_records(records, args.r2_negatives, args.r2_seed)
            check_r2_predictions(records, predictions, args.r2_seed)
        result = evaluate_predictions(records, predictions, protocol, workers=args.workers)
    print(result.report())
    if args.out is not None:
        paths = result.write(args.out)
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    print(f"evaluated {len(records)} videos in {time.perf_counter() - start:.2f} s")
    return 0


def _run_submission(args: argparse.Namespace, layout: str, protocol: str, start: float) -> int:
    """`--checkpoint C --submission FORMAT OUT.zip`: predict every expression of the split into the zip; score
    them where the split has ground truth."""
    from rvos.data.readers import DEFAULT_SPLIT, open_dataset
    from rvos.evaluate.predictions import MemoryPredictions
    from rvos.evaluate.protocols import evaluate_predictions
    from rvos.infer.command import gate_for_config, load_model
    from rvos.infer.records import predict_records
    from rvos.infer.submission import SubmissionZip, has_ground_truth, submission_layout, submission_records

    name, out = args.submission[0], Path(args.submission[1])
    sub_layout = submission_layout(name)  # a bad FORMAT fails before the model loads
    if args.checkpoint is None:
        raise ConfigError("--submission needs --checkpoint: it writes the zip from the model's predictions")
    if protocol == "r2":
        raise ConfigError("--submission holds the split's own expressions; it does not combine with --protocol r2")
    if args.save_predictions is not None:
        raise ConfigError("--submission writes the predictions into OUT.zip; leave out --save-predictions")
    model, cfg = load_model(args.checkpoint, args.device)
    split = args.split or DEFAULT_SPLIT[layout]
    records = submission_records(open_dataset(args.dataset, layout, args.split), args.dataset, name, split)
    gate = gate_for_config(cfg)
    with SubmissionZip(out, name) as sub:
        preds = predict_records(model, records, sinks=sub.sinks, device=args.device, progress=True, gate=gate,
                                threshold=args.threshold, presence_threshold=args.presence_threshold)
    print(f"wrote {out}: {sub_layout.benchmark} submission, {len(records)} videos, {sub.expressions} expressions, "
          f"{sub.pngs} PNGs (upload it to {sub_layout.server})")
    if has_ground_truth(records):
        source = MemoryPredictions(preds, scores=dict(preds.scores), presence=dict(preds.presence))
        result = evaluate_predictions(records, source, protocol, workers=args.workers)
        print(f"scored like the zip (every expression, no-target ones included; `rvos eval {out} --dataset "
              f"{args.dataset}` reads it back):")
        print(result.report())
        if args.out is not None:
            paths = result.write(args.out)
            print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    else:
        print(f"split {split!r} has no public ground truth: only the server can score it")
    print(f"evaluated {len(records)} videos in {time.perf_counter() - start:.2f} s")
    return 0
