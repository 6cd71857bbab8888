"""Negative (absent-object) pairing for R2-VOS: training negatives and the R2 evaluation pairs.

A negative pair is a video queried with an expression that refers to nothing in it: `Expression(obj_ids=[])`.
An expression of video S is *unrelated* to video V when V is not S, no object it refers to has a category present
in V (when categories are known; an unknown category constrains nothing) and V has no positive expression with
the same text (case- and space-insensitive). Expressions a dataset already marks negative (obj_ids empty, e.g.
the synthetic benchmark's absent expressions) stay negatives of their own video. `may_refer(source video id,
expression, video id)`, when given, must also be False: a dataset that knows more than categories (the synthetic
benchmark: rvos.data.synth.truth) rules out sentences that name no category but are true of the video.

- `sample_negatives`: for training, each video gets about `ratio` times as many negatives as it has positive
  expressions (stochastic rounding), texts drawn uniformly from the other videos' unrelated positive expressions,
  without repeats within a video, seeded by (seed, epoch). Per-video balance keeps the video alone from telling
  the label. `training_pairs` adds the positives and the dataset's own negatives; `with_negatives` returns record
  copies carrying the sampled negatives, which `ClipDataset` reads as ordinary negative items.
- `r2_pairing`: R2-YouTube-VOS (R2-VOS section 5.1): each expression is queried on its own video and on one
  unrelated video; the videos are shuffled into a seeded derangement (every video is the negative of exactly one
  other), the permutation with the fewest related expressions among `tries` is kept, and an expression related to
  its assigned video is moved to a seeded unrelated one (or listed `unpaired` when none exists). `r2_records`
  gives the records the "r2" evaluation protocol scores (own expressions + appended negatives).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np

from rvos.data.types import Expression, VideoRecord
from rvos.errors import ConfigError, DatasetError


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def negative_expression(exp: Expression, source_video: str) -> Expression:
    """A copy of `exp` that refers to nothing (holds in no frame), with an id naming where it comes from."""
    return Expression(f"neg-{source_video}-{exp.exp_id}", exp.text, obj_ids=[], spans=[])


MayRefer = Callable[[str, Expression, str], bool]


class _Index:
    """Per video: categories present and positive texts; per positive expression: its referred categories."""

    def __init__(self, records: Sequence[VideoRecord], use_categories: bool, may_refer: Optional[MayRefer] = None):
        self.records, self.may_refer = list(records), may_refer
        ids = [r.video_id for r in self.records]
        if len(set(ids)) != len(ids):
            raise DatasetError("negative pairing needs unique video ids; duplicates: "
                               f"{sorted({i for i in ids if ids.count(i) > 1})}")
        self.cats = [{t.category for t in r.tracks.values() if t.category} for r in self.records]
        self.texts = [{_norm(e.text) for e in r.expressions if e.positive} for r in self.records]
        self.pool: list[tuple[int, Expression, frozenset]] = []  # (source video, expression, referred categories)
        for v, r in enumerate(self.records):
            for e in r.expressions:
                if e.positive:
                    c = {r.tracks[o].category for o in e.obj_ids if o in r.tracks} if use_categories else set()
                    self.pool.append((v, e, frozenset(c - {None})))

    def unrelated(self, p: int, v: int) -> bool:
        src, exp, cats = self.pool[p]
        if src == v or cats & self.cats[v] or _norm(exp.text) in self.texts[v]:
            return False
        return self.may_refer is None or not self.may_refer(self.records[src].video_id, exp, self.records[v].video_id)


def sample_negatives(records: Sequence[VideoRecord], ratio: float = 1.0, seed: int = 0, epoch: int = 0,
                     use_categories: bool = True, may_refer: Optional[MayRefer] = None
                     ) -> list[tuple[VideoRecord, Expression]]:
    """Sampled negative pairs (record, negative expression) for one epoch; deterministic in (seed, epoch)."""
    if ratio < 0:
        raise ConfigError(f"negative ratio must be >= 0, got {ratio}")
    index = _Index(records, use_categories, may_refer)
    rng = np.random.default_rng([seed, epoch])
    out = []
    for v, rec in enumerate(index.records):
        want = ratio * sum(e.positive for e in rec.expressions)
        k = int(want) + int(rng.random() < want - int(want))
        chosen: list[int] = []
        for p in rng.permutation(len(index.pool)):  # lazy: stops after k unrelated expressions
            if len(chosen) == k:
                break
            if index.unrelated(int(p), v):
                chosen.append(int(p))
        for p in chosen:
            src, exp, _ = index.pool[p]
            out.append((rec, negative_expression(exp, index.records[src].video_id)))
    return out


def training_pairs(records: Sequence[VideoRecord], ratio: float = 1.0, seed: int = 0, epoch: int = 0,
                   use_categories: bool = True, keep_dataset_negatives: bool = True
                   ) -> list[tuple[VideoRecord, Expression]]:
    """Positives, the dataset's own negatives (unless told not to) and the sampled negatives of one epoch."""
    own = [(r, e) for r in records for e in r.expressions if e.positive or keep_dataset_negatives]
    return own + sample_negatives(records, ratio, seed, epoch, use_categories)


def with_negatives(records: Sequence[VideoRecord], pairs: Sequence[tuple[VideoRecord, Expression]]
                   ) -> list[VideoRecord]:
    """Copies of `records` with the negative expressions of `pairs` appended to their videos (ids must not clash;
    a video repeated in `records` gets them in every copy)."""
    extra: dict[str, list[Expression]] = {}
    for rec, exp in pairs:
        if exp.positive:
            raise ConfigError(f"with_negatives got a positive expression {exp.exp_id!r} for video {rec.video_id!r}")
        extra.setdefault(rec.video_id, []).append(exp)
    out, seen = [], set()
    for r in records:
        seen.add(r.video_id)
        exps = list(r.expressions) + extra.get(r.video_id, [])
        ids = [e.exp_id for e in exps]
        if len(set(ids)) != len(ids):
            raise DatasetError(f"video {r.video_id!r}: negative expression ids clash with existing ones: "
                               f"{sorted({i for i in ids if ids.count(i) > 1})}")
        out.append(replace(r, expressions=exps))
    if set(extra) - seen:
        raise DatasetError(f"negative pairs name videos not in the records: {sorted(set(extra) - seen)}")
    return out


@dataclass(frozen=True)
class R2Pair:
    record: VideoRecord  # the video queried
    expression: Expression  # obj_ids empty for a negative pair
    source_video: str  # the video the expression was written for

    @property
    def positive(self) -> bool:
        return self.expression.positive


@dataclass
class R2Pairing:
    pairs: list[R2Pair]
    negative_video: dict[str, str]  # source video -> the video its expressions are negatives of (the derangement)
    unpaired: list[tuple[str, str]] = field(default_factory=list)  # (video, exp_id) with no unrelated video at all


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    while True:  # a uniform permutation is a derangement with probability ~1/e (1/2 for n = 2)
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def r2_pairing(records: Sequence[VideoRecord], seed: int = 0, use_categories: bool = True,
               tries: int = 20, may_refer: Optional[MayRefer] = None) -> R2Pairing:
    """Each expression on its own video, and each positive expression also on one unrelated video (see module)."""
    if len(records) < 2:
        raise DatasetError(f"R2 pairing needs at least 2 videos, got {len(records)}")
    index = _Index(records, use_categories, may_refer)
    rng = np.random.default_rng(seed)
    best: Optional[tuple[int, np.ndarray]] = None
    for _ in range(max(1, tries)):
        perm = _derangement(len(index.records), rng)
        related = sum(not index.unrelated(p, int(perm[src])) for p, (src, _, _) in enumerate(index.pool))
        if best is None or related < best[0]:
            best = (related, perm)
        if related == 0:
            break
    perm = best[1]
    pairs = [R2Pair(r, e, r.video_id) for r in index.records for e in r.expressions]
    unpaired = []
    for p, (src, exp, _) in enumerate(index.pool):
        v = int(perm[src])
        if not index.unrelated(p, v):
            options = [u for u in range(len(index.records)) if index.unrelated(p, u)]
            if not options:
                unpaired.append((index.records[src].video_id, exp.exp_id))
                continue
            v = options[int(rng.integers(len(options)))]
        pairs.append(R2Pair(index.records[v], negative_expression(exp, index.records[src].video_id),
                            index.records[src].video_id))
    mapping = {index.records[i].video_id: index.records[int(j)].video_id for i, j in enumerate(perm)}
    return R2Pairing(pairs, mapping, unpaired)


def r2_records(records: Sequence[VideoRecord], seed: int = 0, use_categories: bool = True,
               may_refer: Optional[MayRefer] = None) -> list[VideoRecord]:
    """The records the "r2" protocol scores: every video with its own expressions plus the negatives queried on it."""
    pairing = r2_pairing(records, seed, use_categories, may_refer=may_refer)
    negatives = [(p.record, p.expression) for p in pairing.pairs if p.source_video != p.record.video_id]
    return with_negatives(records, negatives)
