"""Benchmark protocols: which units and frames count, and how per-frame numbers become the headline table.

- "davis-semi": DAVIS 2017 semi-supervised (davis2017-evaluation): per target, J and F on every annotated frame
  but the first and the last; mean/recall/decay per target (`db_statistics`); global = mean over targets,
  J&F-Mean = (J-Mean + F-Mean) / 2. Targets are objects (`<seq>_<obj_id>`) for object-level predictions,
  expressions for expression-level ones.
- "all-frames": Ref-DAVIS as scored by ReferFormer, MeViS, Ref-YouTube-VOS: every annotated frame counts; per
  expression J and F are means over frames, then means over expressions. The target of a multi-object
  expression is the union of its objects' masks; a no-target expression scores J = F = 1 on a frame only when
  the prediction is empty, else 0. Per-sequence rows average a video's expressions.
- "a2d": A2D-Sentences / JHMDB-Sentences frame-level metrics (`A2DMetric`) on the annotated frames of the
  positive expressions (no-target expressions are skipped and counted).
- "r2": R2-VOS: J and F as "all-frames" over positive expressions, R over positive and negative pairs (areas on
  their annotated frames), J&F&R = (J + F + R) / 3 (R2-VOS Table 2; section 5.1 defines R).
- "grounding": mean temporal IoU of predicted spans (from the predictions, else the runs of frames with a
  non-empty predicted mask over the whole video) and annotated `Expression.spans` (a no-target expression
  without spans holds nowhere: []). Expressions with unknown spans are skipped and counted.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from rvos.data.types import VideoRecord
from rvos.errors import ConfigError, DatasetError
from rvos.evaluate.jf import frame_jf
from rvos.evaluate.metrics import A2DMetric, JFMetric, RobustnessMetric, TemporalIoUMetric, spans_from_masks
from rvos.evaluate.predictions import MemoryPredictions, Predictions
from rvos.evaluate.result import EvalResult
from rvos.evaluate.units import Unit, expression_units, gt_mask, object_units

PROTOCOLS = ("davis-semi", "all-frames", "a2d", "r2", "grounding")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _parallel(fn: Callable, items: Sequence, workers: int) -> list:
    """fn over items in a thread pool (PNG decoding, cv2 and numpy release the GIL), results in order."""
    if workers <= 1 or len(items) < 2:
        return [fn(*it) for it in items]
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(fn, *it) for it in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:  # a bad file: stop at once rather than score the rest first
                f.cancel()
            raise


def _units(records: Sequence[VideoRecord], predictions: Predictions, protocol: str) -> list[tuple[VideoRecord, Unit]]:
    out = []
    for r in records:
        objects = protocol == "davis-semi" and predictions.level == "object"
        units = object_units(r) if objects or not r.expressions else expression_units(r)
        out += [(r, u) for u in units]
    return out


def _jf_frame(record: VideoRecord, unit: Unit, t: int, predictions: Predictions) -> tuple[float, float, int]:
    """(J, F, predicted area) of one unit in one frame."""
    pred = predictions.mask(record.video, unit, t)
    area = int(np.count_nonzero(pred))
    if not unit.positive:
        ok = 1.0 if area == 0 else 0.0
        return ok, ok, area
    j, f = frame_jf(pred, gt_mask(record, unit, t))
    return j, f, area


def _score_jf(pairs, predictions: Predictions, workers: int, semi: bool):
    """Per unit: (record, unit, frames, JFMetric, predicted area) with per-frame J and F filled in."""
    plan = [(r, u, list(u.frames[1:-1] if semi else u.frames)) for r, u in pairs]
    items = [(r, u, t, predictions) for r, u, frames in plan for t in frames]
    # score frame by frame (the objects of a frame share a label PNG: decoded once), then back in unit order
    rank: dict[int, int] = {}
    for r, _, _ in plan:
        rank.setdefault(id(r), len(rank))
    order = sorted(range(len(items)), key=lambda i: (rank[id(items[i][0])], items[i][2]))
    unit_order: list = [None] * len(items)
    for i, res in zip(order, _parallel(_jf_frame, [items[i] for i in order], workers)):
        unit_order[i] = res
    results = iter(unit_order)
    scored = []
    for r, u, frames in plan:
        metric, area = JFMetric(), 0
        for _ in frames:
            j, f, a = next(results)
            metric.add(j, f)
            area += a
        scored.append((r, u, frames, metric, area))
    return scored


def _per_frame_rows(scored) -> list[dict]:
    return [{"Video": r.video_id, "Target": str(u.key), "Frame": r.video.frame_names[t], "J": j, "F": f}
            for r, u, frames, m, _ in scored for t, j, f in zip(frames, m.j, m.f)]


def _davis_semi(scored) -> EvalResult:
    stats = [m.result() for _, _, _, m, _ in scored]
    mean = lambda k: float(np.mean([s[k] for s in stats]))  # noqa: E731
    summary = {"J&F-Mean": (mean("J") + mean("F")) / 2, "J-Mean": mean("J"), "J-Recall": mean("J-Recall"),
               "J-Decay": mean("J-Decay"), "F-Mean": mean("F"), "F-Recall": mean("F-Recall"), "F-Decay": mean("F-Decay")}
    seq = [{"Sequence": u.name, "J-Mean": s["J"], "F-Mean": s["F"]} for (_, u, _, _, _), s in zip(scored, stats)]
    return EvalResult("davis-semi", summary, {"per-sequence": seq, "per-frame": _per_frame_rows(scored)})


def _expression_tables(scored) -> tuple[list[dict], list[dict]]:
    per_exp = [{"Video": r.video_id, "Expression": str(u.key), "J": float(np.mean(m.j)), "F": float(np.mean(m.f)),
                "J&F": (float(np.mean(m.j)) + float(np.mean(m.f))) / 2, "frames": len(frames)}
               for r, u, frames, m, _ in scored]
    per_seq = []
    for vid in dict.fromkeys(row["Video"] for row in per_exp):
        rows = [row for row in per_exp if row["Video"] == vid]
        j, f = float(np.mean([x["J"] for x in rows])), float(np.mean([x["F"] for x in rows]))
        per_seq.append({"Sequence": vid, "J&F-Mean": (j + f) / 2, "J-Mean": j, "F-Mean": f, "expressions": len(rows)})
    return per_exp, per_seq


def _all_frames(scored, name: str = "all-frames") -> EvalResult:
    per_exp, per_seq = _expression_tables(scored)
    j, f = float(np.mean([x["J"] for x in per_exp])), float(np.mean([x["F"] for x in per_exp]))
    summary = {"J&F": (j + f) / 2, "J": j, "F": f, "expressions": len(per_exp), "frames": sum(x["frames"] for x in per_exp)}
    return EvalResult(name, summary, {"per-sequence": per_seq, "per-expression": per_exp, "per-frame": _per_frame_rows(scored)})


def _r2(scored) -> EvalResult:
    robust = RobustnessMetric()
    for _, u, _, _, area in scored:
        robust.add(area, u.positive)
    positives = [s for s in scored if s[1].positive]
    if not positives:
        raise DatasetError("the r2 protocol needs positive expressions to compute J, F and the area normaliser of R")
    res = _all_frames(positives, "r2")
    rr = robust.result()
    j, f = res.summary["J"], res.summary["F"]
    res.summary = {"J&F&R": (j + f + rr["R"]) / 3, "J&F": (j + f) / 2, "J": j, "F": f, "R": rr["R"],
                   "neg_area": rr["neg_area"], "pos_area": rr["pos_area"], "positives": len(positives),
                   "negatives": len(scored) - len(positives)}
    res.tables["per-expression"] += [{"Video": r.video_id, "Expression": str(u.key), "negative": True, "pred_area": a}
                                     for r, u, _, _, a in scored if not u.positive]
    return res


def _a2d_sample(record: VideoRecord, unit: Unit, t: int, predictions: Predictions) -> tuple:
    return A2DMetric.sample(predictions.mask(record.video, unit, t), gt_mask(record, unit, t))


def _a2d(pairs, predictions: Predictions, workers: int) -> EvalResult:
    positives = [(r, u) for r, u in pairs if u.positive]
    items = [(r, u, t, predictions) for r, u in positives for t in u.frames]
    metric, rows = A2DMetric(), []
    for (r, u, t, _), sample in zip(items, _parallel(_a2d_sample, items, workers)):
        metric.add(sample, predictions.score(r.video_id, str(u.key)))
        rows.append({"Video": r.video_id, "Expression": str(u.key), "Frame": r.video.frame_names[t],
                     "IoU": sample[0], "I": sample[1], "U": sample[2]})
    summary = metric.result()
    summary["skipped_no_target"] = len(pairs) - len(positives)
    return EvalResult("a2d", summary, {"per-frame": rows})


def _has_mask(record: VideoRecord, unit: Unit, t: int, predictions: Predictions) -> bool:
    return bool(predictions.mask(record.video, unit, t).any())


def _grounding(records: Sequence[VideoRecord], predictions: Predictions, workers: int) -> EvalResult:
    metric, rows, skipped = TemporalIoUMetric(), [], 0
    for r in records:
        for e, u in zip(r.expressions, expression_units(r)):
            gt = e.spans if e.spans is not None else ([] if not e.positive else None)
            if gt is None:
                skipped += 1
                continue
            pred = predictions.spans(r.video_id, e.exp_id)
            if pred is None:
                if predictions.present(r.video_id, e.exp_id) is False:
                    pred = []
                else:
                    items = [(r, u, t, predictions) for t in range(len(r.video))]
                    pred = spans_from_masks(_parallel(_has_mask, items, workers))
            v = metric.update(pred, gt)
            rows.append({"Video": r.video_id, "Expression": e.exp_id, "tIoU": v,
                         "pred_spans": " ".join(f"{s}-{t}" for s, t in pred), "gt_spans": " ".join(f"{s}-{t}" for s, t in gt)})
    if not rows:
        raise DatasetError("no expression has annotated temporal spans: the grounding protocol has nothing to score")
    summary = metric.result()
    summary["skipped_unknown_spans"] = skipped
    return EvalResult("grounding", summary, {"per-expression": rows})


def evaluate_predictions(records: Iterable[VideoRecord], predictions, protocol: str = "davis-semi",
                         workers: Optional[int] = None) -> EvalResult:
    """Score `predictions` against the ground truth of `records` with a benchmark protocol (see module doc).
    `predictions` is a `Predictions` source, or a mapping / callable (video_id, exp_id, frame_index) -> bool
    mask [H, W] (wrapped in `MemoryPredictions`, expression level)."""
    if not isinstance(predictions, Predictions):
        predictions = MemoryPredictions(predictions)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    records = list(records)
    if not records:
        raise DatasetError("no videos to evaluate")
    workers = default_workers() if workers is None else workers
    if protocol == "grounding":
        return _grounding(records, predictions, workers)
    pairs = _units(records, predictions, protocol)
    semi = protocol == "davis-semi"
    kept = [(r, u) for r, u in pairs if (len(u.frames) > 2 if semi else u.frames)]
    if not kept:
        raise DatasetError("nothing to score: no object or expression has annotated ground-truth masks "
                           "(a split without public annotations, or unknown object ids?)")
    if protocol == "a2d":
        result = _a2d(kept, predictions, workers)
    else:
        scored = _score_jf(kept, predictions, workers, semi)
        result = {"davis-semi": _davis_semi, "all-frames": _all_frames, "r2": _r2}[protocol](scored)
    if len(kept) < len(pairs):
        need = "3 annotated frames" if semi else "an annotated frame"
        result.notes.append(f"{len(pairs) - len(kept)} of {len(pairs)} targets have fewer than {need}: not scored")
    return result
