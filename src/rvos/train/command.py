"""`rvos train CONFIG.yaml [key=value ...] [--resume] [--out DIR]`."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see configs/); sections data, model, method, optim, loop")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=1e-4 loop.steps=200")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/checkpoints/last.pt")


def run(args: argparse.Namespace) -> int:
    from rvos.train.config import load_config
    from rvos.train.loop import train

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    parts = train(cfg, out, resume=args.resume)
    import os

    if os.environ.get("RANK", "0") == "0" and parts:
        print(f"done: {out} (last loss {parts.get('loss', float('nan')):.4f}); checkpoint {out / 'checkpoints' / 'last.pt'}")
    return 0
