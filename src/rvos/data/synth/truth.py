"""Which synthetic videos a sentence may be true of, for the negative pairing (rvos.data.negatives).

R2-VOS pairs an expression of video S with another video V as a negative when no object it refers to has a
category present in V. On the synthetic benchmark that rule is wrong for sentences that name no category: "all
the yellow things", written for a video of yellow triangles, is paired with a video holding a yellow car, where it
is true, and a model that segments the car is counted as a false positive (BENCHMARKS.md, "Absent objects: the
pairing's false negatives").

The generator writes each expression's structured query (`meta_expressions.json`: "query", see
rvos.data.synth.queries) and each object's attributes (`<split>/meta.json`). Every query type first keeps the
objects its noun phrase matches (queries.NP: category, colour, size, texture), so a sentence whose noun phrase
matches no object of V refers to nothing in V, whatever the rest of it says. `SynthTruth.may_refer` is True
unless that holds: passed to the pairing, it keeps only negatives that are certainly false. Videos or
expressions it has no record of constrain nothing (the category rule alone decides, as for real data).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rvos.data.types import Expression

ATTRIBUTES = ("category", "colour", "size", "texture")


class SynthTruth:
    def __init__(self, objects: dict[str, list[dict]], queries: dict[tuple[str, str], dict]):
        self.objects = objects  # video id -> its objects' attributes
        self.queries = queries  # (video id, exp id) -> the expression's noun phrase filter (NP fields)

    @classmethod
    def load(cls, root: str | Path, prefix: str = "") -> Optional["SynthTruth"]:
        """The truth tables of every split of the synthetic benchmark at `root` (video ids with `prefix`, as
        data.extra_synth names them), or None when `root` is not one or predates stored queries."""
        root = Path(root)
        if not (root / "synth.json").is_file():
            return None
        objects, queries = {}, {}
        for meta_path in sorted(root.glob("meta_expressions/*/meta_expressions.json")):
            split = meta_path.parent.name
            videos = json.loads(meta_path.read_text())["videos"]
            attrs = json.loads((root / split / "meta.json").read_text())["videos"]
            for vid, v in videos.items():
                objects[prefix + vid] = [{k: o.get(k) for k in ATTRIBUTES} for o in attrs[vid]["objects"].values()]
                for eid, e in v["expressions"].items():
                    if "query" in e:
                        queries[(prefix + vid, eid)] = e["query"]["np"]
        return cls(objects, queries) if queries else None

    def merged(self, other: "SynthTruth") -> "SynthTruth":
        """One table over both benchmarks' videos (e.g. data.root and its extra videos, whose ids are prefixed)."""
        return SynthTruth(self.objects | other.objects, self.queries | other.queries)

    def may_refer(self, source_video: str, expression: Expression, video: str) -> bool:
        """False when the expression's noun phrase matches no object of `video` (it is then certainly absent
        there); True otherwise, and when either is unknown."""
        np_ = self.queries.get((source_video, expression.exp_id))
        objs = self.objects.get(video)
        if np_ is None or objs is None:
            return True
        want = {k: np_.get(k) for k in ATTRIBUTES if np_.get(k) is not None}  # as queries.NP.matches
        return any(all(o.get(k) == v for k, v in want.items()) for o in objs)
