"""The `rules` augmentation backend: paraphrased positives and one-slot hard negatives, offline, from a lexicon.

A sentence is read as spans of lexicon classes (augment/lexicon.py; the longest phrase wins): the referent's
category (the first category word), attributes (colour, size, texture, position words) and actions (verbs, and
the direction words of a moving object: "moving left").

- Positives keep the meaning: a word or phrase swapped for a seed synonym ("disc" -> "circle", "beneath" ->
  "under"), "a" <-> "the", "that is walking" <-> "walking". Up to two such changes, in a seeded order. Without
  seeing the video they cannot add detail, as an MLLM's positives do; they only vary the wording.
- Hard negatives change exactly one of category, attribute or action, cycling through the three kinds:
  the referent's category for another category ("the red car" -> "the red star"), a colour for another colour,
  a size or a position for its opposite ("big" -> "small", "left" -> "right"), a verb for another verb or a
  direction for its opposite ("moving left" -> "moving right"). A replacement is never a synonym, a hypernym or a
  hyponym of the original (so the negative is false of the object), keeps a plural plural, and is drawn from the
  vocabulary of the dataset being augmented when it has one (plausible in that domain: a hard negative), weighted
  by corpus counts, else from the real corpus.
Every draw is seeded by (seed, video id, expression id): the same input gives the same file.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from rvos.augment.lexicon import (DETERMINERS, DIRECTIONS, OPPOSITES, SYNONYMS, Lexicon, build_lexicon, plural, real_sentences,
                                  singular, words)
from rvos.data.types import Expression, VideoRecord

MOTION = {"moving", "moves", "move", "going", "goes", "go", "heading", "heads", "walking", "walks", "running", "runs",
          "turning", "turns", "flying", "flies", "swimming", "driving", "rolling", "crawling", "leaving", "exits",
          "coming", "comes", "jumping", "climbing", "racing", "riding"}
RELATIVE = ("that is", "which is", "who is")
ATTRIBUTE_CLASSES = ("colours", "sizes", "textures", "positions")


def articles(tokens: list[str]) -> list[str]:
    """'a' before a vowel -> 'an', 'an' before a consonant -> 'a' (after a word was swapped)."""
    out = list(tokens)
    for i in range(len(out) - 1):
        if out[i] in ("a", "an"):
            out[i] = "an" if out[i + 1][0] in "aeiou" else "a"
    return out


@dataclass
class Span:
    start: int  # token index
    end: int  # exclusive
    cls: str  # "categories", "actions", "colours", "sizes", "textures", "positions", "directions"
    text: str  # the lexicon form (singular for categories)
    plural: bool = False


@dataclass
class Negative:
    text: str
    changed: str  # "category" | "attribute" | "action"
    slot: str  # the lexicon class changed (e.g. "colours")
    old: str
    new: str


@dataclass
class Generated:
    positives: list[str]
    negatives: list[Negative]


class RulesBackend:
    name = "rules"

    def __init__(self, domain: Sequence[str] = (), lexicon: Optional[Lexicon] = None, seed: int = 0,
                 text_dir=None):
        """`domain`: the sentences of the dataset being augmented; `lexicon`: prebuilt (default: from the real
        sentences of ../shared/data/text plus `domain`)."""
        if lexicon is None:
            real, phrases = real_sentences(text_dir)
            lexicon = build_lexicon(list(real) + list(domain), phrases)
        self.lexicon, self.seed = lexicon, seed
        self.domain = build_lexicon(list(domain), min_count=1) if domain else None
        self._phrases = self._phrase_table()

    # ---- reading a sentence ------------------------------------------------------------------------------------
    def _phrase_table(self) -> dict[tuple[str, ...], str]:
        lex = self.lexicon
        table: dict[tuple[str, ...], str] = {}
        for cls in ("positions", "directions", "textures", "sizes", "colours", "actions", "categories"):
            for w in getattr(lex, cls):
                table.setdefault(tuple(w.split()), cls)
                if cls == "categories":
                    table.setdefault(tuple(plural(w).split()), cls)
        for group in SYNONYMS:  # synonyms ("automobile", "next to", "standing still") are spans too
            known = [table.get(tuple(g.split())) or table.get((g.split()[0],)) for g in sorted(group)]
            cls = next((c for c in known if c is not None), None)
            if cls is not None:
                for w in sorted(group):
                    table[tuple(w.split())] = table.get(tuple(w.split()), cls) if len(w.split()) == 1 else cls
        return table

    def spans(self, tokens: list[str]) -> list[Span]:
        out, i, longest = [], 0, max((len(k) for k in self._phrases), default=1)
        seen_motion = False
        while i < len(tokens):
            for n in range(min(longest, len(tokens) - i), 0, -1):
                key = tuple(tokens[i: i + n])
                cls = self._phrases.get(key)
                if cls is None:
                    continue
                text = " ".join(key)
                is_plural = False
                if cls == "categories" and singular(key[-1]) != key[-1] and text not in self.lexicon.categories:
                    text, is_plural = " ".join(key[:-1] + (singular(key[-1]),)), True
                where = i >= 2 and tokens[i - 2] in {"on", "at", "in"} and tokens[i - 1] == "the" or \
                    (i + n < len(tokens) and tokens[i + n] in {"of", "side", "part", "corner", "half"})
                if cls in ("positions", "directions") and text in self.lexicon.positions and text in DIRECTIONS:
                    # "on the left", "left of": where it is; "moving (to the) left": where it goes, the action's
                    cls = "directions" if (seen_motion or (i and tokens[i - 1] in MOTION)) and not where else "positions"
                elif cls == "directions" and text not in DIRECTIONS:
                    cls = "positions"
                seen_motion |= cls == "actions" and (text in MOTION or text.endswith("ing"))
                out.append(Span(i, i + n, cls, text, is_plural))
                i += n
                break
            else:
                i += 1
        return out

    # ---- positives ---------------------------------------------------------------------------------------------
    def _paraphrase_edits(self, tokens: list[str]) -> list[list[str]]:
        """Single meaning-preserving edits of `tokens`, each a new token list."""
        edits = []
        for sp in self.spans(tokens):
            for syn in sorted(self.lexicon.synonyms(sp.text) - {sp.text}):
                new = syn.split()
                if sp.plural and sp.cls == "categories":
                    new = new[:-1] + [plural(new[-1])]
                edits.append(tokens[: sp.start] + new + tokens[sp.end:])
        if len(tokens) > 1 and tokens[0] in ("a", "an", "the") and not tokens[1].endswith(("est", "most")) \
                and tokens[1] not in DETERMINERS and not any(sp.plural for sp in self.spans(tokens)):
            edits.append(["the" if tokens[0] != "the" else "a"] + tokens[1:])  # not "a lowest disc"
        text = " ".join(tokens)
        for rel in RELATIVE:
            if f" {rel} " in f" {text} ":
                edits.append(f" {text} ".replace(f" {rel} ", " ", 1).split())
        for j, w in enumerate(tokens[1:], 1):  # "the man walking" -> "the man that is walking"
            if w.endswith("ing") and w in self.lexicon.actions and tokens[j - 1] not in {"is", "are", "while"} \
                    and singular(tokens[j - 1]) in self.lexicon.categories:
                edits.append(tokens[:j] + ["that", "is"] + tokens[j:])
                break
        return [articles(e) for e in edits]

    def positives(self, text: str, n: int, rng: np.random.Generator) -> list[str]:
        tokens = words(text)
        original = " ".join(tokens)
        first = [e for e in self._paraphrase_edits(tokens)]
        second = [f for e in first for f in self._paraphrase_edits(e)]
        pool = list(dict.fromkeys(" ".join(e) for e in first + second if " ".join(e) != original))
        singles = [p for p in pool if p in {" ".join(e) for e in first}]
        doubles = [p for p in pool if p not in singles]
        rng.shuffle(singles)
        rng.shuffle(doubles)
        return (singles + doubles)[:n]

    # ---- negatives ---------------------------------------------------------------------------------------------
    def _alternatives(self, sp: Span) -> tuple[list[str], list[float]]:
        if sp.cls in ("sizes", "positions", "directions") or (sp.cls == "actions" and sp.text in OPPOSITES):
            opp = OPPOSITES.get(sp.text)
            if opp is not None:
                return [opp], [1.0]
            if sp.cls != "sizes":
                return [], []
        for lex in (self.domain, self.lexicon):
            if lex is None:
                continue
            pool = getattr(lex, sp.cls)
            if sp.cls == "actions":  # same verb form: "moving" -> "walking", "moves" -> "stops"
                ing = lambda w: w.split()[0].endswith("ing")  # noqa: E731
                same = ing if ing(sp.text) else (lambda w: not ing(w))
                pool = {w: c for w, c in pool.items() if same(w)}
            cands = [w for w in pool if not set(w.split()) & set(sp.text.split())  # not "standing" for "standing still"
                     and not self.lexicon.related(sp.text, w) and not self.lexicon.related(w, sp.text)]
            if cands:
                return cands, [float(pool[w]) for w in cands]
        return [], []

    def negatives(self, text: str, n: int, rng: np.random.Generator) -> list[Negative]:
        tokens = words(text)
        spans = self.spans(tokens)
        first_cat = next((s for s in spans if s.cls == "categories"), None)
        slots = {"category": [first_cat] if first_cat else [],
                 "attribute": [s for s in spans if s.cls in ATTRIBUTE_CLASSES],
                 "action": [s for s in spans if s.cls in ("actions", "directions")]}
        options: dict[str, list[Negative]] = {}
        for kind, cands in slots.items():
            made = []
            for sp in cands:
                alts, weights = self._alternatives(sp)
                if not alts:
                    continue
                order = rng.choice(len(alts), size=len(alts), replace=False, p=np.array(weights) / sum(weights))
                for i in order:
                    new = alts[int(i)].split()
                    if sp.plural and sp.cls == "categories":
                        new = new[:-1] + [plural(new[-1])]
                    out = " ".join(articles(tokens[: sp.start] + new + tokens[sp.end:]))
                    made.append(Negative(out, kind, sp.cls, " ".join(tokens[sp.start: sp.end]), " ".join(new)))
            rng.shuffle(made)
            options[kind] = made
        result, seen = [], {" ".join(tokens)}
        while len(result) < n and any(options.values()):
            for kind in ("category", "attribute", "action"):
                while options[kind] and options[kind][0].text in seen:
                    options[kind].pop(0)
                if options[kind] and len(result) < n:
                    neg = options[kind].pop(0)
                    seen.add(neg.text)
                    result.append(neg)
        return result

    # ---- the backend interface ---------------------------------------------------------------------------------
    def generate(self, record: VideoRecord, exp: Expression, num_positives: int, num_negatives: int) -> Generated:
        rng = np.random.default_rng([self.seed, zlib.crc32(record.video_id.encode()), zlib.crc32(exp.exp_id.encode())])
        return Generated(self.positives(exp.text, num_positives, rng), self.negatives(exp.text, num_negatives, rng))
