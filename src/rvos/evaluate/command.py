"""`rvos eval PRED --dataset ROOT [--layout L] [--split S] [--protocol P] [--out DIR]`: score predictions;
`rvos eval --checkpoint C --dataset ROOT ...`: run the model on the split, then score it.

PRED is a folder of PNGs (`PRED/<video>/<frame>.png` label PNGs, value = object id, DAVIS style; or
`PRED/<video>/<exp_id>/<frame>.png` binary masks, Ref-YouTube-VOS submission style) or an RLE JSON (format in
`rvos.evaluate.predictions`). The ground truth is read with `rvos.data.readers.open_dataset`. Prints the global
numbers and the per-sequence table; with --out writes global_results.csv, <table>_results.csv and results.json.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from rvos.errors import ConfigError
from rvos.evaluate.protocols import PROTOCOLS, default_workers

LAYOUT_CHOICES = ("auto", "ytvos", "davis", "mevis", "a2d", "jhmdb")
DEFAULT_PROTOCOL = {"davis": "davis-semi", "a2d": "a2d", "jhmdb": "a2d"}  # others: all-frames


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, nargs="?", default=None, help="folder of predicted PNGs or an RLE .json")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="instead of PRED: segment every expression of the split with this model, then score")
    parser.add_argument("--device", default="cpu", help="with --checkpoint: cpu, cuda or cuda:N")
    parser.add_argument("--save-predictions", type=Path, default=None,
                        help="with --checkpoint: also write the predicted PNGs (OUT/<video>/<exp_id>/<frame>.png)")
    parser.add_argument("--dataset", type=Path, required=True, help="dataset root (ground truth)")
    parser.add_argument("--layout", default="auto", choices=LAYOUT_CHOICES, help="dataset layout (default: detect)")
    parser.add_argument("--split", default=None, help="dataset split (default: the layout's evaluation split)")
    parser.add_argument("--protocol", default=None, choices=PROTOCOLS,
                        help="scoring protocol (default: davis-semi for davis, a2d for a2d/jhmdb, else all-frames)")
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
    if args.checkpoint is not None:
        from rvos.infer.command import load_model
        from rvos.infer.model_eval import evaluate_model

        model, _ = load_model(args.checkpoint, args.device)  # fail on a bad checkpoint before reading the dataset
        records = open_dataset(args.dataset, layout, args.split)
        result = evaluate_model(model, records, protocol, out=args.save_predictions, device=args.device,
                                progress=True, workers=args.workers)
    else:
        predictions = open_predictions(args.pred)  # fail on a bad PRED before reading the dataset
        records = open_dataset(args.dataset, layout, args.split)
        result = evaluate_predictions(records, predictions, protocol, workers=args.workers)
    print(result.report())
    if args.out is not None:
        paths = result.write(args.out)
        print(f"wrote {', '.join(p.name for p in paths)} to {args.out}")
    print(f"evaluated {len(records)} videos in {time.perf_counter() - start:.2f} s")
    return 0
