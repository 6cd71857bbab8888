"""Temporal spans (MeViS-M style): for each (expression, object), the frames in which the expression refers to
the object. TGL (paper 003) annotates them on MeViS; rvos reads them from a JSON file beside the expressions.

Layout: `temporal_spans.json` next to the split's `meta_expressions.json`
(MeViS: `<root>/<split>/temporal_spans.json`; Ref-YouTube-VOS layout and the synthetic benchmark:
`<root>/meta_expressions/<split>/temporal_spans.json`):

    {"videos": {"<video id>": {"expressions": {"<exp id>": {"obj_spans": {"<obj id>": [[start, end], ...]}}}}}}

- frame indices are positions in the video's `frames` list of meta_expressions.json (0-based), intervals
  half-open ([3, 7] = frames 3, 4, 5, 6), non-empty, within the video, sorted and not overlapping;
- every `<obj id>` must be one of the expression's `obj_id`s; a referred object left out is referred nowhere;
- a no-target expression has `"obj_spans": {}` (it holds nowhere);
- expressions missing from the file keep unknown spans (None).

The reader sets `Expression.object_spans` ({obj_id: spans}) and `Expression.spans` to their union (the frames where
the sentence holds for some referred object), checking it against a `spans` list meta_expressions.json may also
give. Where only expression-level `spans` exist (the synthetic benchmark's partial expressions before this file
existed, any MeViS-style file), `spans_of` gives every referred object the expression's spans.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence

from rvos.data.types import Expression, VideoRecord
from rvos.errors import DatasetError

Span = tuple[int, int]
SPANS_FILE = "temporal_spans.json"


def union(spans: Iterable[Sequence[Span]]) -> list[Span]:
    """Sorted, merged half-open intervals covering every frame of any of the span lists."""
    frames = sorted({t for lst in spans for s, e in lst for t in range(int(s), int(e))})
    out: list[Span] = []
    for t in frames:
        if out and out[-1][1] == t:
            out[-1] = (out[-1][0], t + 1)
        else:
            out.append((t, t + 1))
    return out


def runs(flags: Sequence[bool]) -> list[Span]:
    """Half-open intervals where a boolean sequence is true."""
    out, start = [], None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    return out


def holds(spans: Optional[Sequence[Span]], frame: int) -> bool:
    """Whether `frame` lies in one of the spans (True when the spans are unknown)."""
    return spans is None or any(s <= frame < e for s, e in spans)


def spans_of(exp: Expression, obj_id: int) -> Optional[list[Span]]:
    """When `exp` refers to object `obj_id`: its own spans, else the expression's, else None (unknown)."""
    if exp.object_spans is not None:
        return list(exp.object_spans.get(obj_id, []))
    return None if exp.spans is None else list(exp.spans)


def objects_in(exp: Expression, frames: Iterable[int]) -> list[int]:
    """The referred objects the expression refers to in at least one of `frames` (all of them when their spans
    are unknown): the targets of object-level selective supervision (TGL's OSS)."""
    frames = [int(t) for t in frames]
    out = []
    for o in exp.obj_ids:
        s = spans_of(exp, o)
        if s is None or any(holds(s, t) for t in frames):
            out.append(o)
    return out


def check_spans(raw, n_frames: int, where: str) -> list[Span]:
    """[[s, e], ...] -> sorted list of (s, e); DatasetError naming `where` unless 0 <= s < e <= n_frames and the
    intervals do not overlap."""
    try:
        spans = [(int(s), int(e)) for s, e in raw]
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: spans must be [[start, end], ...], got {raw!r}") from None
    spans.sort()
    for s, e in spans:
        if not 0 <= s < e <= n_frames:
            raise DatasetError(f"{where}: span [{s}, {e}] must have 0 <= start < end <= {n_frames} (the video's frames)")
    for (_, e0), (s1, _) in zip(spans, spans[1:]):
        if s1 < e0:
            raise DatasetError(f"{where}: spans {spans} overlap")
    return spans


def read_spans_file(path: Path) -> Optional[dict]:
    """The parsed `temporal_spans.json` (videos -> vid -> expressions -> exp id -> obj_spans), None when absent."""
    from rvos.data.readers.common import load_json

    path = Path(path)
    if not path.is_file():
        return None
    data = load_json(path, "temporal spans")
    if not isinstance(data.get("videos"), dict):
        raise DatasetError(f"temporal spans file {path} needs a 'videos' mapping: videos -> vid -> expressions -> "
                           "exp id -> {'obj_spans': {obj id: [[start, end], ...]}}")
    return data


def attach_spans(records: list[VideoRecord], data: Optional[dict], path: Path) -> list[VideoRecord]:
    """Set `object_spans` and `spans` of the expressions `data` (a parsed spans file) names, in place; the records
    are returned. Unknown videos or expressions, objects the expression does not refer to, and a union that
    disagrees with the expression's own `spans` are DatasetErrors naming the file."""
    if data is None:
        return records
    by_id = {r.video_id: r for r in records}
    for vid, v in data["videos"].items():
        rec = by_id.get(vid)
        if rec is None:
            raise DatasetError(f"temporal spans file {path} names video {vid!r}, which the split does not have")
        exps = {e.exp_id: e for e in rec.expressions}
        entries = v.get("expressions") if isinstance(v, dict) else None
        if not isinstance(entries, dict):
            raise DatasetError(f"temporal spans file {path}: video {vid!r} needs an 'expressions' mapping")
        for exp_id, entry in entries.items():
            exp = exps.get(str(exp_id))
            where = f"video {vid!r} expression {exp_id!r} of {path}"
            if exp is None:
                raise DatasetError(f"{where}: the video has no such expression (expressions: {sorted(exps)})")
            raw = entry.get("obj_spans") if isinstance(entry, dict) else None
            if not isinstance(raw, dict):
                raise DatasetError(f"{where}: needs 'obj_spans': {{obj id: [[start, end], ...]}}, got {entry!r}")
            obj_spans = {}
            for o, lst in raw.items():
                try:
                    oid = int(o)
                except ValueError:
                    raise DatasetError(f"{where}: object id {o!r} is not an int") from None
                if oid not in exp.obj_ids:
                    raise DatasetError(f"{where}: object {oid} is not one the expression refers to ({exp.obj_ids})")
                obj_spans[oid] = check_spans(lst, len(rec.video), f"{where}, object {oid}")
            merged = union(obj_spans.values())
            if exp.spans is not None and union([exp.spans]) != merged:
                raise DatasetError(f"{where}: the objects' spans cover {merged}, but meta_expressions gives the "
                                   f"expression's spans as {exp.spans}")
            exp.object_spans = obj_spans
            exp.spans = merged
    return records


def whole_video_spans(records: Sequence[VideoRecord]) -> list[VideoRecord]:
    """Copies of `records` whose positive expressions refer to each of their objects in every frame and whose
    negative expressions hold nowhere: the spans of a dataset without span annotation (e.g. DAVIS)."""
    from dataclasses import replace

    out = []
    for rec in records:
        n = len(rec.video)
        exps = [replace(e, spans=[(0, n)] if e.positive else [], object_spans={o: [(0, n)] for o in e.obj_ids})
                for e in rec.expressions]
        out.append(replace(rec, expressions=exps))
    return out
