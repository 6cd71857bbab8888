"""Annotation cost of a set of records, in annotator seconds, and the WRVOS cost model it follows.

WRVOS (Sec. V-B) prices a polygon mask at 79 s and a box at 7 s (after [27, 28]) and, with 27.3 mask frames per
object on average in YouTube-RVOS, finds full = 79 x 27.3 = 2157 s an object and Weak_M+B
2157 / (1 x 79 + 26.3 x 7) = 8.2x cheaper; Weak_B is ~11x and Weak_M ~27x cheaper. `wrvos_object_cost` is that
formula; `annotation_cost` counts the same quantities on real records:

- a mask is paid for on every MASK frame whose mask is non-empty (a mask is drawn);
- a box on every BOX frame with a box (a box is drawn);
- frames annotated as "not visible" (empty mask, box None) and NONE frames cost 0: the paper counts only drawn
  annotations, so we do too;
- a temporal span costs `span_seconds` (default 10 s). ASSUMPTION, not from any paper: an annotator who has
  watched the video scrubs to the start and to the end of the span, about 5 s a boundary, a little less than a
  box (7 s) each. Spans are counted per (start, end) interval: of every referred object where the expression
  carries per-object spans (MeViS-M style, `Expression.object_spans`), else of every expression that carries spans;
- writing the sentences is not counted: every regime keeps the same expressions, so it cancels in comparisons
  (hence the text regime costs 0 spatial seconds).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Iterable, Optional

from rvos.data.regimes import REGIMES, MaskBoxes, apply_regime
from rvos.data.types import Records, TargetKind
from rvos.errors import DatasetError

MASK_SECONDS = 79.0  # WRVOS: a polygon-based object mask
BOX_SECONDS = 7.0  # WRVOS: a bounding box
SPAN_SECONDS = 10.0  # our assumption: marking a span's start and end (see module docstring)
WRVOS_FRAMES_PER_OBJECT = 27.3  # WRVOS: mask-annotated frames per object in YouTube-RVOS, on average


@dataclass
class CostReport:
    """What a set of records cost to annotate. `full_seconds`/`speedup` are set when compared to `full`."""

    masks: int  # masks drawn (MASK frames with a non-empty mask)
    boxes: int  # boxes drawn (BOX frames with a box)
    spans: int  # temporal spans marked
    mask_frames: int  # frames with a MASK target (drawn or annotated as not visible)
    box_frames: int  # frames with a BOX target
    none_frames: int  # frames with no target
    mask_seconds: float  # price of one mask
    box_seconds: float
    span_seconds: float
    full_seconds: Optional[float] = None  # cost of the same records under the `full` regime
    regime: Optional[str] = None

    @property
    def seconds(self) -> float:
        return self.masks * self.mask_seconds + self.boxes * self.box_seconds + self.spans * self.span_seconds

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def speedup(self) -> Optional[float]:
        """How many times cheaper than `full` (WRVOS's "x8.2 faster"); None when unknown or when this costs 0."""
        if self.full_seconds is None or self.seconds == 0:
            return None
        return self.full_seconds / self.seconds

    @property
    def ratio_to_full(self) -> Optional[float]:
        """This cost as a fraction of `full` (1 / speedup; 0 for the text regime)."""
        if self.full_seconds is None or self.full_seconds == 0:
            return None
        return self.seconds / self.full_seconds

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(seconds=self.seconds, hours=self.hours, speedup=self.speedup, ratio_to_full=self.ratio_to_full)
        return d


def annotation_cost(records: Records, mask_seconds: float = MASK_SECONDS, box_seconds: float = BOX_SECONDS,
                    span_seconds: float = SPAN_SECONDS, boxes: Optional[MaskBoxes] = None) -> CostReport:
    """Count drawn masks, drawn boxes and marked spans over every object track and expression of `records`.
    Deciding whether a mask is drawn loads it (once per mask when `boxes` is shared)."""
    boxes = boxes or MaskBoxes()
    n = {"masks": 0, "boxes": 0, "spans": 0, "mask_frames": 0, "box_frames": 0, "none_frames": 0}
    for rec in records:
        for tr in rec.tracks.values():
            for i, t in enumerate(tr.targets):
                if t.kind == TargetKind.MASK:
                    if t.mask is None:
                        raise DatasetError(f"video {rec.video_id!r} object {tr.obj_id} frame {i}: "
                                           "MASK target without a mask")
                    n["mask_frames"] += 1
                    n["masks"] += boxes.box(t.mask) is not None
                elif t.kind == TargetKind.BOX:
                    n["box_frames"] += 1
                    n["boxes"] += t.box is not None
                else:
                    n["none_frames"] += 1
        n["spans"] += sum(sum(map(len, e.object_spans.values())) if e.object_spans is not None else len(e.spans)
                          for e in rec.expressions if e.spans is not None or e.object_spans is not None)
    return CostReport(**n, mask_seconds=mask_seconds, box_seconds=box_seconds, span_seconds=span_seconds)


def compare_regimes(records: Records, names: Iterable[str] = tuple(REGIMES), seed: int = 0,
                    mask_seconds: float = MASK_SECONDS, box_seconds: float = BOX_SECONDS,
                    span_seconds: float = SPAN_SECONDS, boxes: Optional[MaskBoxes] = None,
                    workers: int = 2) -> dict[str, CostReport]:
    """Cost of `records` under each regime, each with `full_seconds` set. The cost of `full` needs every mask,
    so all are decoded first (once, on `workers` threads) and every regime reuses their boxes."""
    boxes = boxes or MaskBoxes()
    boxes.prefetch(records, workers=workers)
    prices = dict(mask_seconds=mask_seconds, box_seconds=box_seconds, span_seconds=span_seconds)
    full_seconds = annotation_cost(apply_regime(records, "full", boxes=boxes), **prices, boxes=boxes).seconds
    out = {}
    for name in names:
        report = annotation_cost(apply_regime(records, name, seed=seed, boxes=boxes), **prices, boxes=boxes)
        out[name] = replace(report, full_seconds=full_seconds, regime=name)
    return out


def wrvos_object_cost(n_frames: float, mask_seconds: float = MASK_SECONDS,
                      box_seconds: float = BOX_SECONDS) -> dict[str, float]:
    """WRVOS's per-object cost of each scheme for an object visible (and annotated) in `n_frames` frames:
    full = 79 N, box (Weak_B) = 7 N, mask (Weak_M) = 79, mask_box (Weak_M+B) = 79 + 7 (N - 1)."""
    return {
        "full": mask_seconds * n_frames,
        "box": box_seconds * n_frames,
        "mask": mask_seconds,
        "mask_box": mask_seconds + box_seconds * (n_frames - 1),
    }
