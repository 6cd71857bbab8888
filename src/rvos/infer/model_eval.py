"""Evaluate a model on dataset records: predict every expression, then score with a benchmark protocol.
Used by `rvos eval --checkpoint`, by the trainer's periodic validation and by `rvos demo`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from rvos.data.types import Expression, VideoRecord
from rvos.evaluate import evaluate_predictions
from rvos.evaluate.predictions import MemoryPredictions
from rvos.evaluate.result import EvalResult
from rvos.infer.records import predict_records

Keep = Callable[[VideoRecord, Expression], bool]  # which expressions a scoring view keeps


def evaluate_model(model, records: Sequence[VideoRecord], protocol: str = "all-frames", *,
                   out: Optional[Path | str] = None, positives_only: Optional[bool] = None,
                   progress: bool = False, workers: Optional[int] = None, **predictor_kwargs) -> EvalResult:
    """Segment the expressions of `records` with `model` and score them with `protocol`.
    `positives_only` (default: True except for the r2 protocol) skips absent-object expressions, which only the
    r2 protocol scores. `out` also writes the predicted PNGs (`OUT/<video>/<exp_id>/<frame>.png`)."""
    if positives_only is None:
        positives_only = protocol != "r2"
    return evaluate_model_protocols(model, records, {protocol: positives_only}, out=out, progress=progress,
                                    workers=workers, **predictor_kwargs)[protocol]


def evaluate_model_protocols(model, records: Sequence[VideoRecord], protocols: dict[str, bool], *,
                             out: Optional[Path | str] = None, progress: bool = False,
                             workers: Optional[int] = None, **predictor_kwargs) -> dict[str, EvalResult]:
    """One prediction pass, several protocols: `protocols` maps a protocol to whether it scores the positive
    expressions only (e.g. {"all-frames": True, "r2": False})."""
    views = {p: (p, _is_positive if positives_only else None) for p, positives_only in protocols.items()}
    return evaluate_model_views(model, records, views, out=out, progress=progress, workers=workers, **predictor_kwargs)


def evaluate_model_views(model, records: Sequence[VideoRecord], views: dict[str, tuple[str, Optional[Keep]]], *,
                         out: Optional[Path | str] = None, progress: bool = False,
                         workers: Optional[int] = None, **predictor_kwargs) -> dict[str, EvalResult]:
    """One prediction pass, several scorings: `views` maps a name to (protocol, keep), `keep(record, expression)`
    choosing the expressions that view scores (None: all). Only expressions some view keeps are predicted. E.g.
    on `r2_records` of the synthetic benchmark, R over the pairing's negatives and R over the dataset's own
    absent-object expressions: {"r2": ("r2", lambda r, e: e.positive or e.exp_id.startswith("neg-")),
    "r2-absent": ("r2", lambda r, e: not e.exp_id.startswith("neg-"))}."""
    keeps = [k for _, k in views.values()]
    predict = None if any(k is None for k in keeps) else (lambda r, e: any(k(r, e) for k in keeps))
    preds = predict_records(model, records, out=out, expressions=predict, progress=progress, **predictor_kwargs)
    source = MemoryPredictions(preds, scores=dict(preds.scores), presence=dict(preds.presence),
                               spans=dict(preds.spans))
    results = {}
    for name, (protocol, keep) in views.items():
        scored = list(records)
        if keep is not None:
            scored = [r for r in (_subset(r, keep) for r in records) if r.expressions]
        results[name] = evaluate_predictions(scored, source, protocol, workers=workers)
    return results


def _is_positive(record: VideoRecord, exp: Expression) -> bool:
    return exp.positive


def _subset(record: VideoRecord, keep: Keep) -> VideoRecord:
    from dataclasses import replace

    return replace(record, expressions=[e for e in record.expressions if keep(record, e)])


def validation_fn(records: Sequence[VideoRecord], protocol: str = "all-frames", **predictor_kwargs):
    """An `eval_fn(model) -> {metric: value}` for the trainer: the protocol's summary numbers."""

    def eval_fn(model) -> dict[str, float]:
        result = evaluate_model(model, records, protocol, **predictor_kwargs)
        return {k: float(v) for k, v in result.summary.items() if isinstance(v, (int, float))}

    return eval_fn
