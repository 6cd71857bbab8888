"""Referring expressions of a synthetic video, generated from its ground truth.

For each object: appearance, position, motion, relation and partial-time (MeViS-M spans) queries that pick it out
uniquely; per video: multi-object groups and absent-object negatives. Each positive gets paraphrased positives and
hard negatives (category, attribute, action or relation changed until it fits nothing), as WSRVOS's augmentation
produces. Every query is checked with `queries.resolve` before its sentence is kept.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np

from rvos.data.synth.config import CATEGORIES, COLOURS, DIRECTIONS, SIZES, TEXTURES, SynthConfig
from rvos.data.synth.phrases import phrasings
from rvos.data.synth.queries import NP, RELATIONS, SIDES, Facts, Query, resolve

KIND = {"appearance": "appearance", "extreme": "position", "region": "position", "motion": "motion",
        "relation": "relation", "group": "multi", "during": "partial"}
IN_MEMORY_KEYS = ("hard_neg_queries",)  # not written to disk; "query" is (rvos.data.synth.truth reads it)
VALUES = {"category": CATEGORIES, "colour": tuple(COLOURS), "size": tuple(SIZES), "texture": TEXTURES}


def _refers(q: Query, f: Facts, targets: set[int]) -> bool:
    m = resolve(q, f)
    return m.strict == m.loose == frozenset(targets)


def unique_np(rng: np.random.Generator, f: Facts, i: int) -> NP | None:
    """The shortest noun phrase (category + fewest attributes) that fits object i and no other; None if none."""
    o = f.objects[i]
    for k in range(4):
        combos = list(itertools.combinations(("colour", "size", "texture"), k))
        for j in rng.permutation(len(combos)):
            np_ = NP(category=o.category, **{a: getattr(o, a) for a in combos[j]})
            if _refers(Query("appearance", np_), f, {i}):
                return np_
    return None


def _object_queries(rng, f: Facts, i: int, names: dict) -> list[Query]:
    """Candidate positive queries for object i, one of each kind at most, each verified."""
    o, out = f.objects[i], []
    cat, catcol = NP(o.category), NP(o.category, o.colour)
    if names[i] is not None:
        out.append(Query("appearance", names[i]))
    position = [Query("extreme", np_, (s,)) for np_ in (cat, catcol) if len(f.ids(np_)) >= 2 for s in SIDES]
    position += [Query("region", np_, (s,)) for np_ in (cat, catcol) for s in SIDES]
    motions = [("moving", d) for d in DIRECTIONS] + [("still",), ("stops",), ("starts",)]
    motions += [("turns", a, b) for a, b in itertools.permutations(DIRECTIONS, 2)]
    motions += [(m, s) for m in ("enters", "leaves") for s in SIDES]
    nps = [cat, catcol] + ([names[i]] if names[i] is not None else [])
    motion = [Query("motion", np_, m) for np_ in nps for m in motions]
    relation = [Query("relation", cat, (r,), names[a]) for a in f.objects if a != i and names[a] is not None
                for r in RELATIONS]
    states = sorted(set(f.motion[i]))
    during = [Query("during", np_, (s,)) for np_ in nps for s in states if len(states) > 1]
    for group in (position, motion, relation, during):
        for j in rng.permutation(len(group)):
            q = group[j]
            if _refers(q, f, {i}) and (q.type != "during" or _partial(q, f, i)):
                out.append(q)
                break
    return out


def _partial(q: Query, f: Facts, i: int) -> bool:
    spans = resolve(q, f).spans[i]
    return sum(e - s for s, e in spans) < int(f.visible[i].sum())


def _group_queries(f: Facts) -> list[tuple[Query, set[int]]]:
    out = {}
    for o in f.objects.values():
        for np_ in (NP(o.category), NP(o.category, o.colour), NP(colour=o.colour)):
            ids = set(f.ids(np_))
            if len(ids) >= 2 and np_ not in out:
                out[np_] = ids
    return [(Query("group", np_), ids) for np_, ids in out.items()]


def _absent_queries(f: Facts) -> list[Query]:
    """Category absent from the video, or a colour + category combination that does not occur."""
    present = {(o.category, o.colour) for o in f.objects.values()}
    cats = {c for c, _ in present}
    out = [Query("appearance", NP(c)) for c in CATEGORIES if c not in cats]
    out += [Query("appearance", NP(c, col)) for c in sorted(cats) for col in COLOURS if (c, col) not in present]
    return [q for q in out if not resolve(q, f).loose]


def _np_mutations(np_: NP) -> list[NP]:
    out = []
    for key in ("category", "colour", "size", "texture"):
        cur = getattr(np_, key)
        if key != "category" and cur is None:
            continue
        out += [replace(np_, **{key: v}) for v in VALUES[key] if v != cur]
    return out


def _mutations(q: Query) -> list[Query]:
    out = [replace(q, np=n) for n in _np_mutations(q.np)]
    if q.type == "relation":
        out += [replace(q, anchor=n) for n in _np_mutations(q.anchor)]
        out += [replace(q, arg=(r,)) for r in RELATIONS if r != q.arg[0]]
    if q.type == "motion":
        m = q.arg
        alts = [("moving", d) for d in DIRECTIONS] + [("still",), ("stops",), ("starts",)]
        alts += [(m[0], s) for s in SIDES] if m[0] in ("enters", "leaves") else []
        alts += [("turns", m[2], m[1])] if m[0] == "turns" else []
        out += [replace(q, arg=a) for a in alts if a != m]
    if q.type == "during":
        out += [replace(q, arg=(s,)) for s in DIRECTIONS + ("still",) if s != q.arg[0]]
    return out


def _augment(rng, q: Query, f: Facts, targets: set[int], main: str, cfg: SynthConfig) -> tuple[list, list, list]:
    """(paraphrased positives, hard negatives, their queries) of a verified positive query."""
    count = len(targets)
    pos = [p for p in phrasings(q, count) if p != main]
    if q.type != "group":  # more detailed positives: add true attributes of the target
        o = f.objects[min(targets)]
        for key in ("colour", "size", "texture"):
            richer = replace(q, np=replace(q.np, **{key: getattr(o, key)}))
            if richer != q and _refers(richer, f, targets):
                pos += phrasings(richer, count)[:2]
    pos = list(dict.fromkeys(p for p in pos if p != main))
    aug = [pos[j] for j in sorted(rng.permutation(len(pos))[: cfg.paraphrases])]
    negs = [m for m in _mutations(q) if not resolve(m, f).loose]
    neg_texts, neg_queries = [], []
    for j in rng.permutation(len(negs)):
        texts = phrasings(negs[j], count)
        text = texts[int(rng.integers(len(texts)))]
        if text not in neg_texts and text != main and len(neg_texts) < cfg.hard_negatives:
            neg_texts.append(text)
            neg_queries.append(negs[j])
    return aug, neg_texts, neg_queries


def _ids_json(ids) -> str | list[str]:
    return str(ids[0]) if len(ids) == 1 else [str(i) for i in ids]


def generate_expressions(rng: np.random.Generator, f: Facts, cfg: SynthConfig) -> list[dict]:
    """Expression dicts in the meta_expressions layout with each one's structured query, plus IN_MEMORY_KEYS (the
    hard negatives' queries, for tests)."""
    names = {i: unique_np(rng, f, i) for i in f.objects}
    per_source = [[(q, {i}) for q in _object_queries(rng, f, i, names)] for i in f.objects if f.visible[i].any()]
    groups = _group_queries(f)
    per_source.append([groups[j] for j in rng.permutation(len(groups))[:2]])
    for lst in per_source:
        order = rng.permutation(len(lst))
        lst[:] = [lst[j] for j in order]
    chosen = [x for round_ in itertools.zip_longest(*per_source) for x in round_ if x is not None]
    chosen = chosen[: cfg.max_expressions]
    absent = _absent_queries(f)
    absent_cat = [q for q in absent if q.np.colour is None]
    absent_mix = [q for q in absent if q.np.colour is not None]
    picks = []
    for pool in (absent_mix, absent_cat) * cfg.absent_per_video:
        if pool and len(picks) < cfg.absent_per_video:
            q = pool[int(rng.integers(len(pool)))]
            if q not in picks:
                picks.append(q)
    out = []
    for q, targets in chosen:
        texts = phrasings(q, len(targets))
        main = texts[int(rng.integers(len(texts)))]
        aug, negs, neg_queries = _augment(rng, q, f, targets, main, cfg)
        e = {"exp": main, "obj_id": _ids_json(sorted(targets)), "kind": KIND[q.type]}
        if q.type == "during":
            e["spans"] = [list(s) for s in resolve(q, f).spans[min(targets)]]
        e.update({"aug_pos": aug, "hard_neg": negs, "query": q.to_dict(),
                  "hard_neg_queries": [n.to_dict() for n in neg_queries]})
        out.append(e)
    for q in picks:
        texts = phrasings(q)
        out.append({"exp": texts[int(rng.integers(len(texts)))], "obj_id": [], "kind": "absent",
                    "query": q.to_dict()})
    return out
