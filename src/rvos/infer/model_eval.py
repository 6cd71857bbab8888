"""Evaluate a model on dataset records: predict every expression, then score with a benchmark protocol.
Used by `rvos eval --checkpoint`, by the trainer's periodic validation and by `rvos demo`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from rvos.data.types import VideoRecord
from rvos.evaluate import evaluate_predictions
from rvos.evaluate.predictions import MemoryPredictions
from rvos.evaluate.result import EvalResult
from rvos.infer.records import predict_records


def evaluate_model(model, records: Sequence[VideoRecord], protocol: str = "all-frames", *,
                   out: Optional[Path | str] = None, positives_only: Optional[bool] = None,
                   progress: bool = False, workers: Optional[int] = None, **predictor_kwargs) -> EvalResult:
    """Segment the expressions of `records` with `model` and score them with `protocol`.
    `positives_only` (default: True except for the r2 protocol) skips absent-object expressions, which only the
    r2 protocol scores. `out` also writes the predicted PNGs (`OUT/<video>/<exp_id>/<frame>.png`)."""
    if positives_only is None:
        positives_only = protocol != "r2"
    keep = (lambda r, e: e.positive) if positives_only else None
    preds = predict_records(model, records, out=out, expressions=keep, progress=progress, **predictor_kwargs)
    if positives_only:
        records = [_positives(r) for r in records]
        records = [r for r in records if r.expressions]
    source = MemoryPredictions(preds, scores=dict(preds.scores), presence=dict(preds.presence))
    return evaluate_predictions(records, source, protocol, workers=workers)


def _positives(record: VideoRecord) -> VideoRecord:
    from dataclasses import replace

    return replace(record, expressions=[e for e in record.expressions if e.positive])


def validation_fn(records: Sequence[VideoRecord], protocol: str = "all-frames", **predictor_kwargs):
    """An `eval_fn(model) -> {metric: value}` for the trainer: the protocol's summary numbers."""

    def eval_fn(model) -> dict[str, float]:
        result = evaluate_model(model, records, protocol, **predictor_kwargs)
        return {k: float(v) for k, v in result.summary.items() if isinstance(v, (int, float))}

    return eval_fn
