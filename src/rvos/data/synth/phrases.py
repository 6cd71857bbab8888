"""Turning a structured `Query` into English: every wording of it (synonyms x templates), in a fixed order, so that
one is the expression and others are its paraphrased positives."""
from __future__ import annotations

import itertools
import re

from rvos.data.synth.queries import NP, Query

NOUNS = {  # category -> [(singular, plural), ...]
    "circle": [("circle", "circles"), ("disc", "discs"), ("round shape", "round shapes")],
    "square": [("square", "squares"), ("square shape", "square shapes")],
    "triangle": [("triangle", "triangles"), ("triangular shape", "triangular shapes")],
    "star": [("star", "stars"), ("star shape", "star shapes")],
    "ring": [("ring", "rings"), ("donut", "donuts")],
    "cross": [("cross", "crosses"), ("plus sign", "plus signs")],
    "car": [("car", "cars"), ("vehicle", "vehicles")],
    "person": [("person", "people"), ("figure", "figures")],
    None: [("object", "objects"), ("thing", "things")],
}
SIZE_WORDS = {"big": ["big", "large"], "small": ["small", "little"]}
TEXTURE_WORDS = {"striped": ["striped"], "dotted": ["dotted", "spotted"], "plain": ["plain"]}
TEXTURE_SUFFIX = {"striped": " with stripes", "dotted": " with dots"}
DIR_WORDS = {"left": ["left", "to the left"], "right": ["right", "to the right"], "up": ["up", "upwards"],
             "down": ["down", "downwards"]}
SIDE_OF_DIR = {"left": "left", "right": "right", "up": "top", "down": "bottom"}

EXTREME = {
    "left": ["the leftmost {np}", "the {np} furthest to the left", "the {np} on the far left"],
    "right": ["the rightmost {np}", "the {np} furthest to the right", "the {np} on the far right"],
    "top": ["the topmost {np}", "the highest {np}", "the {np} closest to the top"],
    "bottom": ["the bottommost {np}", "the lowest {np}", "the {np} closest to the bottom"],
}
REGION = {
    "left": ["the {np} on the left side", "the {np} in the left part of the frame"],
    "right": ["the {np} on the right side", "the {np} in the right part of the frame"],
    "top": ["the {np} at the top", "the {np} in the upper part of the frame"],
    "bottom": ["the {np} at the bottom", "the {np} in the lower part of the frame"],
}
RELATION = {
    "left": ["the {np} left of the {a}", "the {np} to the left of the {a}", "the {np} on the left of the {a}"],
    "right": ["the {np} right of the {a}", "the {np} to the right of the {a}", "the {np} on the right of the {a}"],
    "above": ["the {np} above the {a}", "the {np} over the {a}"],
    "below": ["the {np} below the {a}", "the {np} under the {a}", "the {np} beneath the {a}"],
}
MOTION = {
    "moving": ["the {np} moving {d}", "the {np} that moves {d}", "the {np} going {d}", "the {np} heading {d}"],
    "still": ["the {np} standing still", "the {np} that does not move", "the {np} staying in place"],
    "stops": ["the {np} that stops", "the {np} that stops moving", "the {np} that comes to a stop"],
    "starts": ["the {np} that starts moving", "the {np} that begins to move", "the {np} that starts to move"],
    "turns": ["the {np} that moves {d1} and then turns {d2}", "the {np} going {d1} then {d2}",
              "the {np} that turns {d2} after moving {d1}"],
    "enters": ["the {np} entering from the {side}", "the {np} that comes in from the {side}",
               "the {np} appearing from the {side}"],
    "leaves": ["the {np} leaving to the {side}", "the {np} that exits on the {side}",
               "the {np} that leaves the frame on the {side}"],
}
DURING = {
    "moving": ["the {np} while it moves {d}", "the {np} when it is moving {d}", "the {np} as it goes {d}"],
    "still": ["the {np} while it stands still", "the {np} when it is not moving", "the {np} while it is stopped"],
}
COUNTS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def np_phrases(np_: NP, plural: bool = False) -> list[str]:
    """All wordings of a noun phrase, most plain first: '[size] [colour] [texture] noun' or 'noun with stripes'."""
    out = []
    sizes = SIZE_WORDS[np_.size] if np_.size else [""]
    colours = [np_.colour] if np_.colour else [""]
    for noun, size, colour in itertools.product(NOUNS[np_.category], sizes, colours):
        word = noun[1] if plural else noun[0]
        lead = " ".join(w for w in (size, colour) if w)
        if np_.texture:
            for tex in TEXTURE_WORDS[np_.texture]:
                out.append(" ".join(w for w in (lead, tex, word) if w))
            if np_.texture in TEXTURE_SUFFIX:
                out.append(" ".join(w for w in (lead, word) if w) + TEXTURE_SUFFIX[np_.texture])
        else:
            out.append(" ".join(w for w in (lead, word) if w))
    return out


def phrasings(q: Query, count: int = 1) -> list[str]:
    """Every wording of a query (deduplicated, in a fixed order). `count` is the group size for group queries."""
    nps = np_phrases(q.np)
    if q.type == "appearance":
        out = [t.format(np=n) for n in nps for t in ("the {np}", "a {np}")]
    elif q.type == "extreme":
        out = [t.format(np=n) for n in nps for t in EXTREME[q.arg[0]]]
    elif q.type == "region":
        out = [t.format(np=n) for n in nps for t in REGION[q.arg[0]]]
    elif q.type == "relation":
        out = [t.format(np=n, a=a) for n in nps for a in np_phrases(q.anchor)[:2] for t in RELATION[q.arg[0]]]
    elif q.type == "group":
        plurals = np_phrases(q.np, plural=True)
        templates = [f"the {COUNTS.get(count, str(count))} {{np}}", "all {np}", "all the {np}"]
        if count == 2:
            templates.insert(1, "both {np}")
        out = [t.format(np=n) for n in plurals for t in templates]
    elif q.type == "motion":
        m = q.arg
        fill = []
        if m[0] == "moving":
            fill = [{"d": d} for d in DIR_WORDS[m[1]]]
        elif m[0] == "turns":
            fill = [{"d1": m[1], "d2": m[2]}]
        elif m[0] in ("enters", "leaves"):
            fill = [{"side": m[1]}]
        out = [t.format(np=n, **kw) for n in nps for kw in (fill or [{}]) for t in MOTION[m[0]]]
    elif q.type == "during":
        state = q.arg[0]
        key, fill = ("still", [{}]) if state == "still" else ("moving", [{"d": d} for d in DIR_WORDS[state]])
        out = [t.format(np=n, **kw) for n in nps for kw in fill for t in DURING[key]]
    else:
        raise ValueError(f"unknown query type {q.type!r}")
    return list(dict.fromkeys(re.sub(r"\ba ([aeiou])", r"an \1", x) for x in out))
