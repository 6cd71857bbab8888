"""`rvos augment DATASET --backend B --out FILE`: WSRVOS's contrastive expression augmentation, offline.

    rvos augment runs/demo/data --split train --backend rules --out runs/aug_rules.jsonl
    rvos augment DATA --backend openai --base-url http://localhost:8000/v1 --model Qwen/Qwen3-VL-8B-Instruct \\
        --out runs/aug_qwen.jsonl --rpm 60 --workers 4
    rvos augment DATA --backend rules --scorer model --checkpoint runs/simrvos/checkpoints/last.pt --out FILE

Run again with the same --out to resume: expressions already in the file are skipped. Train on the file with
`rvos train wsrvos_synth data.augment=FILE`.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from rvos.data.types import require_file

BACKENDS = ("rules", "openai", "dataset")


def add_args(parser: argparse.ArgumentParser) -> None:
    from rvos.data.stats import LAYOUTS

    parser.add_argument("dataset", type=Path, help="dataset root folder")
    parser.add_argument("--out", type=Path, required=True, help="the JSONL cache to write (appended to: resumable)")
    parser.add_argument("--backend", choices=BACKENDS, default="rules",
                        help="rules (offline lexicon), openai (a VLM behind an OpenAI-compatible endpoint) or "
                             "dataset (the lists the dataset ships, e.g. the synthetic benchmark's)")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto", help="dataset layout (default: detect)")
    parser.add_argument("--split", default=None, help="split to read (default: the layout's default)")
    parser.add_argument("--positives", type=int, default=6, help="P positives per expression (the paper's code: 6)")
    parser.add_argument("--negatives", type=int, default=12, help="N hard negatives per expression (default 12)")
    parser.add_argument("--scorer", choices=("text", "model", "none"), default="text",
                        help="similarity filter: text (MiniLM cosine to the original), model (a checkpoint's "
                             "video-level score), none")
    parser.add_argument("--threshold", type=float, default=0.8, help="keep positives scoring >= this (paper: 0.8)")
    parser.add_argument("--checkpoint", default=None, help="trained rvos checkpoint for --scorer model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rules backend's draws")
    parser.add_argument("--text-dir", type=Path, default=None,
                        help="real sentences for the rules lexicon (default ../shared/data/text)")
    parser.add_argument("--limit", type=int, default=None, help="augment at most this many expressions (a trial)")
    g = parser.add_argument_group("openai backend")
    g.add_argument("--base-url", default=None, help="e.g. http://localhost:8000/v1")
    g.add_argument("--model", default=None, help="the served vision-language model's name")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    g.add_argument("--retries", type=int, default=3, help="retries of a failed request")
    g.add_argument("--rpm", type=float, default=0.0, help="at most this many requests a minute (0: no limit)")
    g.add_argument("--frames", type=int, default=4, help="frames sent per expression")
    g.add_argument("--image-size", type=int, default=448, help="longer side of each frame sent")
    g.add_argument("--workers", type=int, default=1, help="parallel requests")


def make_backend(args, records):
    from rvos.augment.openai_backend import AugmentError, OpenAIBackend, OpenAIConfig
    from rvos.augment.rules import RulesBackend
    from rvos.augment.run import DatasetBackend

    if args.backend == "rules":
        domain = [e.text for r in records for e in r.expressions if e.positive]
        return RulesBackend(domain=domain, seed=args.seed, text_dir=args.text_dir), {"seed": args.seed}
    if args.backend == "dataset":
        return DatasetBackend(), {}
    if not args.base_url or not args.model:
        raise AugmentError("the openai backend needs --base-url (e.g. http://localhost:8000/v1) and --model")
    cfg = OpenAIConfig(base_url=args.base_url, model=args.model, api_key=os.environ.get(args.api_key_env),
                       timeout=args.timeout, retries=args.retries, rpm=args.rpm, frames=args.frames,
                       image_size=args.image_size)
    return OpenAIBackend(cfg), {"base_url": args.base_url, "model": args.model, "frames": args.frames}


def run(args: argparse.Namespace) -> int:
    from rvos.augment.cache import AugWriter
    from rvos.augment.run import augment_records
    from rvos.augment.scorers import build_scorer
    from rvos.data.readers import open_dataset

    root = require_file(args.dataset, "dataset folder")
    records = open_dataset(root, layout=args.layout, split=args.split)
    backend, params = make_backend(args, records)
    scorer = build_scorer(args.scorer, args.checkpoint)
    header = {"backend": backend.name, "backend_params": params, "scorer": scorer.name,
              "checkpoint": args.checkpoint if args.scorer == "model" else None, "threshold": args.threshold,
              "positives": args.positives, "negatives": args.negatives, "dataset": str(root), "split": args.split}
    same = ["backend", "backend_params", "scorer", "checkpoint", "threshold", "positives", "negatives", "split"]
    with AugWriter(args.out, header, compare=same) as writer:
        stats = augment_records(records, backend, scorer, writer, args.positives, args.negatives, args.threshold,
                                workers=args.workers, limit=args.limit)
    print(f"{args.out}: {stats.line()}")
    return 0
