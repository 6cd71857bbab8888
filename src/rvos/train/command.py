"""`rvos train CONFIG.yaml [key=value ...] [--resume] [--out DIR]`."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config, or the name of a packaged one (simrvos_synth, tiny_test); sections data, model, method, optim, loop")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. optim.lr=1e-4 loop.steps=200")
    p.add_argument("--out", default=None, help="run folder (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT/checkpoints/last.pt")
    p.add_argument("--two-step", action="store_true",
                   help="WRVOS's two-step baseline (Table XII): train mask + MIL under data.regime into OUT/step1, "
                        "turn every box into a pseudo mask, train SimRVOS fully supervised on them into OUT/step2")


def validation(cfg):
    """Periodic validation (every loop.eval_every steps and at the end) on data.val_split, when one is set:
    J, F and J&F of the positive expressions with the all-frames protocol, logged as eval/<metric>."""
    import os

    if not cfg.data.val_split or os.environ.get("RANK", "0") != "0":
        return None
    from rvos.data.readers import open_dataset
    from rvos.infer.model_eval import validation_fn

    # the full ground truth: the supervision regime limits what training sees, not what validation scores
    return validation_fn(open_dataset(cfg.data.root, layout=cfg.data.layout, split=cfg.data.val_split), "all-frames")


def run(args: argparse.Namespace) -> int:
    from rvos.train.config import load_config
    from rvos.train.loop import train

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    if args.two_step:
        from rvos.errors import ConfigError
        from rvos.methods.two_step import train_two_step

        if args.resume:
            raise ConfigError("--two-step cannot --resume (it runs two trainings); rerun it into a fresh --out")
        train_two_step(cfg, out, eval_fn=validation(cfg))
        print(f"done: {out}; step 1 (mask + MIL) in {out / 'step1'}, step 2 (SimRVOS on pseudo masks) in "
              f"{out / 'step2'}; checkpoint {out / 'step2' / 'checkpoints' / 'last.pt'}")
        return 0
    parts = train(cfg, out, resume=args.resume, eval_fn=validation(cfg))  # method objects: both of its phases
    import os

    if os.environ.get("RANK", "0") == "0" and parts:
        print(f"done: {out} (last loss {parts.get('loss', float('nan')):.4f}); checkpoint {out / 'checkpoints' / 'last.pt'}")
    return 0
