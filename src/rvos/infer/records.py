"""Predict every expression of dataset records, for `rvos eval --checkpoint` and for submission.

Each video is read and encoded once; all its expressions are decoded against the same features. The result is a
read-only mapping (video_id, exp_id, frame_index) -> bool mask [H, W], the shape `rvos.evaluate` takes. Masks
are never all held decoded: with `out` they are Ref-YouTube-VOS-style PNGs `out/<video>/<exp_id>/<frame>.png`
read back on access (re-scorable, zippable with `rvos.infer.writers.zip_pngs`); without `out` they are kept as
COCO RLE and decoded on access. The mapping also carries `scores` (mean per-frame score of the chosen query)
`presence` (the gated video-level decision, when the model has a presence head and gating is on) and `spans`
(frames where the model's relevance > 0.5, when it has a relevance output), all keyed (video_id, exp_id):
`rvos.evaluate.predictions.MemoryPredictions(preds, scores=preds.scores, presence=preds.presence,
spans=preds.spans)` is what the evaluator takes."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image

from rvos.data.types import Expression, VideoRecord
from rvos.errors import DatasetError
from rvos.infer.predictor import FrameSink, Predictor
from rvos.infer.rle import decode_rle
from rvos.infer.writers import PaletteSink

Key = tuple[str, str, int]  # (video_id, exp_id, frame_index)


class _Predictions(Mapping):
    scores: dict[tuple[str, str], float]
    presence: dict[tuple[str, str], bool]  # the gate's decision (only when gating)
    presence_scores: dict[tuple[str, str], float]  # sigmoid(A), whenever the model has a presence head
    spans: dict[tuple[str, str], list[tuple[int, int]]]


class PngPredictions(_Predictions):
    """Masks stored as palette PNGs (non-zero = object), read when asked for."""

    def __init__(self, root: Path, paths: dict[Key, Path]):
        self.root, self.paths = Path(root), paths
        self.scores, self.presence, self.presence_scores, self.spans = {}, {}, {}, {}

    def __getitem__(self, key: Key) -> np.ndarray:
        path = self.paths[key]
        try:
            with Image.open(path) as im:
                return np.asarray(im) > 0
        except (OSError, ValueError) as e:
            raise DatasetError(f"unreadable prediction PNG {path}: {e}") from None

    def __iter__(self) -> Iterator[Key]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


class RlePredictions(_Predictions):
    """Masks stored as COCO RLE in memory, decoded when asked for."""

    def __init__(self, rles: dict[Key, dict]):
        self.rles = rles
        self.scores, self.presence, self.presence_scores, self.spans = {}, {}, {}, {}

    def __getitem__(self, key: Key) -> np.ndarray:
        return decode_rle(self.rles[key])

    def __iter__(self) -> Iterator[Key]:
        return iter(self.rles)

    def __len__(self) -> int:
        return len(self.rles)


def predict_records(model, records: Sequence[VideoRecord], *, out: Optional[Path | str] = None,
                    split: Optional[str] = None,
                    expressions: Optional[Callable[[VideoRecord, Expression], bool]] = None,
                    progress: bool = False,
                    sinks: Optional[Callable[[VideoRecord, list[Expression]], Sequence[FrameSink]]] = None,
                    **predictor_kwargs) -> _Predictions:
    """Segment every expression (those `expressions(record, exp)` keeps) of every record (of `split`, when
    given). `model` is a model or a ready `Predictor`; other keyword arguments build the Predictor
    (device, window, threshold, size, amp, gate ...). `sinks(record, expressions)` gives more sinks for a
    video's masks (in expression order), e.g. a benchmark submission zip (`rvos.infer.submission`)."""
    predictor = model if isinstance(model, Predictor) else Predictor(model, **predictor_kwargs)
    preds = RlePredictions({}) if out is None else PngPredictions(Path(out), {})
    was, predictor.keep_rle = predictor.keep_rle, out is None
    try:
        chosen = [r for r in records if split is None or r.split == split]
        if progress:
            from tqdm import tqdm

            chosen = tqdm(chosen, desc="predict", unit="video")
        for record in chosen:
            exps = [e for e in record.expressions if expressions is None or expressions(record, e)]
            if exps:
                _predict_video(predictor, record, exps, preds, list(sinks(record, exps)) if sinks else [])
    finally:
        predictor.keep_rle = was
    return preds


def _predict_video(predictor: Predictor, record: VideoRecord, exps: list[Expression], preds: _Predictions,
                   extra: list[FrameSink]) -> None:
    """All expressions of one video in one pass over its frames."""
    vid, names = record.video_id, record.video.frame_names
    png = isinstance(preds, PngPredictions)
    sinks = ([PaletteSink(preds.root / vid, dirs=[e.exp_id for e in exps])] if png else []) + extra
    results = predictor.segment(record.video, [e.text for e in exps], sinks=sinks)
    for e, r in zip(exps, results):
        preds.scores[(vid, e.exp_id)] = float(np.mean(r.scores))
        if r.presence_score is not None:
            preds.presence_scores[(vid, e.exp_id)] = r.presence_score
        if r.present is not None and predictor.gate is not False:
            preds.presence[(vid, e.exp_id)] = r.present
        if r.spans is not None:
            preds.spans[(vid, e.exp_id)] = r.spans
        for i, name in enumerate(names):
            if png:
                preds.paths[(vid, e.exp_id, i)] = preds.root / vid / e.exp_id / f"{name}.png"
            else:
                preds.rles[(vid, e.exp_id, i)] = r.rles[i]
