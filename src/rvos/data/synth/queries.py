"""Structured referring queries and the ground-truth matcher that decides which objects each one refers to.

Every expression is generated from a query and kept only when `resolve` says it is true of the scene:
- `strict`: objects the query holds for throughout the video (where the object is visible),
- `loose`: objects it holds for in at least one frame.
A positive expression needs strict == loose == its targets (so no other object could be meant, even for a
moment); a negative (absent or hard negative) needs loose == {} (it fits nothing, ever).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from rvos.data.spans import runs
from rvos.data.synth.scene import SceneObject

SIDES = ("left", "right", "top", "bottom")
RELATIONS = ("left", "right", "above", "below")
EXTREME_MARGIN = 4.0  # px between the extreme object's centre and the next one's


@dataclass(frozen=True)
class NP:
    """A noun phrase: attribute filter; None fields are not mentioned."""

    category: Optional[str] = None
    colour: Optional[str] = None
    size: Optional[str] = None
    texture: Optional[str] = None

    def matches(self, o: SceneObject) -> bool:
        return all(v is None or getattr(o, k) == v for k, v in asdict(self).items())


@dataclass(frozen=True)
class Query:
    """type: appearance | extreme | region | motion | relation | group | during.
    arg: side (extreme/region), motion tuple (motion), relation (relation), state (during)."""

    type: str
    np: NP
    arg: tuple = ()
    anchor: Optional[NP] = None

    def to_dict(self) -> dict:
        return {"type": self.type, "np": asdict(self.np), "arg": list(self.arg),
                "anchor": None if self.anchor is None else asdict(self.anchor)}


@dataclass
class Match:
    strict: frozenset
    loose: frozenset
    spans: dict = field(default_factory=dict)  # obj_id -> [(s, e)] for `during` queries


def motion_labels(velocity: np.ndarray) -> list[str]:
    """Per-frame 'left' | 'right' | 'up' | 'down' | 'still' from axis-aligned velocities [T, 2]."""
    out = []
    for vx, vy in velocity:
        if abs(vx) < 1e-9 and abs(vy) < 1e-9:
            out.append("still")
        elif abs(vx) >= abs(vy):
            out.append("right" if vx > 0 else "left")
        else:
            out.append("down" if vy > 0 else "up")
    return out


class Facts:
    """What is true of a rendered video: visibility (from the label maps), centres and motion per frame."""

    def __init__(self, objects: list[SceneObject], labels: np.ndarray):
        self.objects = {o.obj_id: o for o in objects}
        self.t, self.height, self.width = labels.shape
        present = [np.bincount(labels[i].ravel(), minlength=256) > 0 for i in range(self.t)]
        self.visible = {o.obj_id: np.array([p[o.obj_id] for p in present]) for o in objects}
        self.motion = {o.obj_id: motion_labels(o.velocity) for o in objects}

    def ids(self, np_: NP) -> list[int]:
        return [i for i, o in self.objects.items() if np_.matches(o) and self.visible[i].any()]

    def coord(self, i: int, t: int, axis: str) -> float:
        return float(self.objects[i].centres[t, 0 if axis == "x" else 1])


def _extreme(f: Facts, q: Query) -> Match:
    axis, sign = {"left": ("x", 1), "right": ("x", -1), "top": ("y", 1), "bottom": ("y", -1)}[q.arg[0]]
    cands = f.ids(q.np)
    strict, loose = set(), set()
    for i in cands:
        ok_all, ok_any = True, False
        for t in np.flatnonzero(f.visible[i]):
            others = [c for c in cands if c != i and f.visible[c][t]]
            key = sign * f.coord(i, t, axis)
            best_other = min((sign * f.coord(c, t, axis) for c in others), default=np.inf)
            ok_all &= key < best_other - EXTREME_MARGIN
            ok_any |= key < best_other + EXTREME_MARGIN
        strict |= {i} if ok_all else set()
        loose |= {i} if ok_any else set()
    return Match(frozenset(strict), frozenset(loose))


def _region(f: Facts, q: Query) -> Match:
    side = q.arg[0]

    def inside(i, t):
        x, y = f.coord(i, t, "x"), f.coord(i, t, "y")
        return {"left": x < f.width / 3, "right": x > 2 * f.width / 3,
                "top": y < f.height / 3, "bottom": y > 2 * f.height / 3}[side]

    strict, loose = set(), set()
    for i in f.ids(q.np):
        hits = [inside(i, t) for t in np.flatnonzero(f.visible[i])]
        strict |= {i} if all(hits) else set()
        loose |= {i} if any(hits) else set()
    return Match(frozenset(strict), frozenset(loose))


def _beyond(f: Facts, i: int, t: int, side: str) -> bool:
    x, y = f.coord(i, t, "x"), f.coord(i, t, "y")
    return {"left": x < 0, "right": x > f.width, "top": y < 0, "bottom": y > f.height}[side]


def _motion_holds(f: Facts, i: int, m: tuple) -> tuple[bool, bool]:
    """(holds throughout, holds at some moment) of a motion description for object i."""
    lab, vis, last = f.motion[i], f.visible[i], f.t - 1
    pairs = list(zip(lab[:-1], lab[1:]))
    if m[0] == "moving":
        return all(x == m[1] for x in lab), any(x == m[1] for x in lab)
    if m[0] == "still":
        return all(x == "still" for x in lab), any(x == "still" for x in lab)
    if m[0] in ("stops", "starts", "turns"):
        a, b = {"stops": (None, "still"), "starts": ("still", None), "turns": m[1:3]}[m[0]]
        fits = [(x != y) and (x == a or (a is None and x != "still")) and (y == b or (b is None and y != "still"))
                for x, y in pairs]
        changes = sum(x != y for x, y in pairs)
        return any(fits) and changes == 1, any(fits)
    if m[0] == "enters":
        ok = not vis[0] and vis.any() and _beyond(f, i, 0, m[1])
        return ok, ok
    if m[0] == "leaves":
        ok = not vis[last] and vis.any() and _beyond(f, i, last, m[1])
        return ok, ok
    raise ValueError(f"unknown motion {m}")


def _relation(f: Facts, q: Query) -> Match:
    anchors = f.ids(q.anchor)
    strict, loose = set(), set()
    for i in f.ids(q.np):
        for a in anchors:
            if a == i:
                continue
            both = np.flatnonzero(f.visible[i] & f.visible[a])
            o, b = f.objects[i], f.objects[a]
            margin = 0.5 * (o.radius + b.radius)
            axis, sign = {"left": ("x", -1), "right": ("x", 1), "above": ("y", -1), "below": ("y", 1)}[q.arg[0]]
            d = [sign * (f.coord(i, t, axis) - f.coord(a, t, axis)) for t in both]  # > 0 when the relation holds
            if len(both) >= max(1, f.t // 3) and all(x > margin for x in d):
                strict.add(i)
            if any(x > 0 for x in d):
                loose.add(i)
    return Match(frozenset(strict), frozenset(loose))


def resolve(q: Query, f: Facts) -> Match:
    """Which objects the query refers to (see the module docstring)."""
    if q.type in ("appearance", "group"):
        ids = frozenset(f.ids(q.np))
        return Match(ids, ids)
    if q.type == "extreme":
        return _extreme(f, q)
    if q.type == "region":
        return _region(f, q)
    if q.type == "relation":
        return _relation(f, q)
    if q.type == "motion":
        res = {i: _motion_holds(f, i, q.arg) for i in f.ids(q.np)}
        return Match(frozenset(i for i, r in res.items() if r[0]), frozenset(i for i, r in res.items() if r[1]))
    if q.type == "during":
        spans = {}
        for i in f.ids(q.np):
            s = runs([x == q.arg[0] and v for x, v in zip(f.motion[i], f.visible[i])])
            if s:
                spans[i] = s
        ids = frozenset(spans)
        return Match(ids, ids, spans)
    raise ValueError(f"unknown query type {q.type!r}")
