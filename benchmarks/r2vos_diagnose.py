"""Where SimRVOS+R2 stands after N steps on the synthetic benchmark: the consensus loss over training (the run's
metrics.jsonl), J&F / R without gating and gated at presence thresholds 0.3-0.7 on the test split's R2 pairing (one
prediction pass, the gate applied afterwards), how well the presence logit separates positive from negative pairs
(mean sigmoid(A) of each, AUC), and whether the reconstruction e' depends on the video.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/r2vos_diagnose.py STEPS OUT [r2vos_table options]
    e.g. benchmarks/r2vos_diagnose.py 1200 runs/r2diag_match          # the model config of r2vos_synth.yaml
         benchmarks/r2vos_diagnose.py 750 runs/r2diag model.r2_consensus=concat
         benchmarks/r2vos_diagnose.py 1200 runs/r2diag_seed1 --seeds 1             # another training seed

The feature cache is kept in runs/r2cache (shared with `r2vos_table.py --cache-dir runs/r2cache`); the trained
weights go to OUT/model.pt. When OUT/model.pt already exists (a finished run), it is loaded and only scored; give
the same STEPS and options as for the run.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
import torch
from r2vos_table import parse_args, presence_separation, row_config
from rvos.data.readers import open_dataset
from rvos.evaluate.command import r2_eval_records
from rvos.evaluate.predictions import MemoryPredictions
from rvos.evaluate.protocols import evaluate_predictions
from rvos.infer.records import predict_records
from rvos.models import build_model
from rvos.train.feature_cache import build_feature_cache
from rvos.train.hooks import LogHook
from rvos.train.loop import Trainer, seed_all


THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # presence thresholds of the gate (eq. 12 uses 0.5)


def main(argv: list[str]) -> int:
    steps, out, extra = int(argv[0]), Path(argv[1]), argv[2:]
    args = parse_args(["--steps", str(steps), "--data", "data/synth", *extra])
    seed = args.seeds[0]  # --seeds S: the training seed (default 0)
    cfg = row_config(args, "simrvos+r2", seed, args.data)
    print(cfg.model, flush=True)
    train, test = open_dataset(args.data, split="train"), open_dataset(args.data, split="test")
    seed_all(seed)
    model = build_model(cfg.model)
    if (out / "model.pt").is_file():
        model.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True))
        return score(model.eval(), test)
    t0 = time.perf_counter()
    cache = build_feature_cache(model, train, tuple(cfg.data.clip.size), "cpu", Path("runs/r2cache"))
    print(f"cache {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, out, records=train, model=model, features=cache, hooks=[LogHook()])
    trainer.fit()
    print(f"train {time.perf_counter() - t0:.1f} s", flush=True)
    torch.save(trainer.model.state_dict(), out / "model.pt")
    return score(trainer.model.eval(), test)


def score(model, test) -> int:
    """One ungated prediction pass; the gate of eq. 12 applied afterwards at several presence thresholds."""
    records = r2_eval_records(test, "pairing", 0)
    preds = predict_records(model, records, gate=False)
    for tau in (None, *THRESHOLDS):
        presence = {} if tau is None else {k: p >= tau for k, p in preds.presence_scores.items()}
        s = evaluate_predictions(records, MemoryPredictions(preds, scores=dict(preds.scores), presence=presence), "r2",
                                 workers=1).summary
        print("ungated" if tau is None else f"gated at sigmoid(A) >= {tau}",
              {k: round(float(s[k]), 3) for k in ("J", "F", "J&F", "R", "J&F&R")}, flush=True)
    p = presence_separation(model, records)
    print(f"presence: positives {p['presence_pos']:.3f}, negatives {p['presence_neg']:.3f}, AUC {p['presence_auc']:.3f}")
    print(f"e': cosine of one sentence's e' on two videos {p['rec_cos_same_text']:.3f}, of two sentences' e' on one "
          f"video {p['rec_cos_same_video']:.3f}; mean response gate {p['rec_gate_mean']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
