"""The lexicon of the `rules` augmentation backend, built from real referring sentences.

Word classes and where each comes from:
- categories: counted in the corpus. A category is the first content word of a noun phrase: of each A2D
  `short_query` (the annotators' own noun phrase), and of every sentence, after its determiners, numbers,
  colours, sizes, textures and position words. Seeds add the multi-word categories a word count cannot find
  ("plus sign", "round shape") when the corpus holds them, and words of other classes are removed.
- actions: counted in the corpus: "-ing" words after "is"/"are"/"while"/a category, and third-person verbs after
  "that"/"which"/"who" ("that moves"). A stop list drops nouns that end in -ing ("something", "building").
- colours, sizes, textures, directions, positions: small closed classes. The seed words are kept when the corpus
  uses them (with their counts), and the corpus adds "<x>-colored" / "<x> colored" words to the colours.
- synonyms, hypernyms and opposites: hand-made seeds (a word count cannot tell "disc" means "circle"). They keep
  paraphrases true (synonym or more general word) and hard negatives false (never a synonym or a hypernym).

`build_lexicon(sentences)` takes any sentences: `real_sentences()` reads ../shared/data/text, and the rules
backend adds the sentences of the dataset being augmented, so its own vocabulary (e.g. the synthetic shapes) is
there and is preferred when a replacement is drawn (a hard negative should be plausible in that domain).
"""
from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from rvos.errors import DatasetError

WORD = re.compile(r"[a-z]+(?:-[a-z]+)*")

DETERMINERS = {"the", "a", "an", "this", "that", "these", "those", "some", "another", "other", "all", "both", "its",
               "his", "her", "their", "one", "two", "three", "four", "five", "first", "second", "third", "fourth",
               "last", "only", "single", "same", "whole", "of", "each", "every"}
COLOURS = {"white", "black", "red", "blue", "green", "yellow", "brown", "gray", "grey", "orange", "pink", "purple",
           "violet", "silver", "golden", "gold", "tan", "beige", "dark", "light", "cyan", "maroon", "navy", "khaki",
           "turquoise", "magenta", "cream", "colorful", "colourful", "blonde", "blond", "ginger"}
SIZES = {"big", "small", "little", "large", "tiny", "huge", "giant", "tall", "short", "long", "fat", "thin",
         "medium", "bigger", "smaller", "larger", "taller", "shorter"}
TEXTURES = {"plain", "striped", "dotted", "spotted", "checkered", "patterned", "furry", "fluffy", "wooden", "metal",
            "shiny"}
POSITIONS = {"left", "right", "top", "bottom", "middle", "center", "centre", "front", "back", "behind", "near",
             "far", "upper", "lower", "leftmost", "rightmost", "topmost", "bottommost", "highest", "lowest",
             "closest", "nearest", "furthest", "farthest", "above", "below", "under", "beneath", "over", "beside",
             "background", "foreground", "corner", "side"}
DIRECTIONS = {"left", "right", "up", "down", "upwards", "downwards", "forward", "forwards", "backward",
              "backwards", "towards", "toward", "away", "around", "across", "into", "out", "leftwards", "rightwards"}
ACTION_STOP = {"something", "during", "ring", "building", "ceiling", "thing", "king", "wing", "evening", "morning",
               "clothing", "sibling", "string", "spring", "ping", "being", "nothing", "everything", "anything",
               "railing", "parking", "ranking", "bowling", "training", "wearing", "holding", "using", "looking",
               "watching", "doing", "getting", "taking", "trying", "making", "showing", "facing", "including"}
GENERIC = {"thing", "things", "object", "objects", "figure", "figures", "shape", "shapes", "one", "ones", "item",
           "stuff", "someone", "something", "somebody", "anything"}
NOT_CATEGORY = {"is", "are", "in", "on", "with", "and", "to", "at", "by", "from", "who", "which", "that", "s", "it",
                "i", "while", "when", "as", "then", "near", "next", "being", "for", "has", "not", "does", "most",
                "cute", "beautiful", "very", "pair", "half", "number", "colored", "coloured"}  # + corpus adjectives
SEED_PHRASES = {"plus sign", "round shape", "triangular shape", "square shape", "star shape", "teddy bear",
                "polar bear", "race car", "sports car", "police car", "fire truck", "golf ball", "tennis ball"}
SYNONYMS: list[set[str]] = [
    {"circle", "disc", "round shape"}, {"ring", "donut"}, {"cross", "plus sign"}, {"triangle", "triangular shape"},
    {"square", "square shape"}, {"star", "star shape"}, {"car", "automobile"}, {"man", "guy"}, {"woman", "lady"},
    {"kid", "child"}, {"baby", "infant", "toddler"}, {"person", "human", "someone"}, {"puppy", "pup"},
    {"kitten", "kitty"}, {"motorbike", "motorcycle"}, {"bike", "bicycle"}, {"sofa", "couch"},
    {"grey", "gray"}, {"big", "large"}, {"small", "little"}, {"huge", "giant"}, {"center", "centre", "middle"},
    {"beneath", "under", "below"}, {"above", "over"}, {"beside", "next to"}, {"upwards", "up"},
    {"downwards", "down"}, {"moving", "going", "heading"}, {"moves", "goes"}, {"standing still", "not moving"},
    {"furthest", "farthest"}, {"closest", "nearest"}, {"walking", "strolling"}, {"running", "jogging"},
    {"lying", "laying"}, {"dotted", "spotted"}, {"topmost", "highest"}, {"bottommost", "lowest"},
]
PERSON = {"man", "woman", "boy", "girl", "guy", "lady", "kid", "child", "baby", "player", "soldier", "gentleman",
          "adult", "toddler", "infant", "mother", "father", "instructor", "dancer", "rider", "skier", "surfer"}
ANIMAL = {"dog", "cat", "bird", "horse", "cow", "camel", "goat", "sheep", "parrot", "duck", "fish", "monkey",
          "panda", "lizard", "tiger", "deer", "ape", "owl", "giraffe", "fox", "kangaroo", "snake", "turtle", "rabbit",
          "elephant", "zebra", "mouse", "bear", "dolphin", "puppy", "kitten", "pigeon", "seagull", "eagle", "lion",
          "gorilla", "chameleon", "squirrel", "frog", "whale", "shark", "hamster", "leopard", "raven", "sparrow"}
VEHICLE = {"car", "truck", "bus", "van", "bike", "motorbike", "sedan", "train", "boat", "bicycle", "motorcycle",
           "airplane", "plane", "tractor", "taxi", "jeep", "scooter"}
SHAPE = {"circle", "disc", "ring", "donut", "cross", "triangle", "square", "star", "round shape", "plus sign",
         "triangular shape", "square shape", "star shape"}
HYPERNYMS = {**{w: "person" for w in PERSON}, **{w: "animal" for w in ANIMAL}, **{w: "vehicle" for w in VEHICLE},
             **{w: "shape" for w in SHAPE}, "person": "figure", "shape": "figure"}
OPPOSITES_PAIRS = [("big", "small"), ("large", "small"), ("little", "big"), ("tall", "short"), ("long", "short"),
                   ("huge", "tiny"), ("fat", "thin"), ("bigger", "smaller"), ("larger", "smaller"),
                   ("left", "right"), ("leftmost", "rightmost"), ("top", "bottom"), ("upper", "lower"),
                   ("topmost", "bottommost"), ("highest", "lowest"), ("up", "down"), ("upwards", "downwards"),
                   ("above", "below"), ("over", "under"), ("beneath", "above"), ("front", "back"),
                   ("closest", "furthest"), ("nearest", "farthest"), ("near", "far"), ("forward", "backward"),
                   ("towards", "away from"), ("entering", "leaving"), ("enters", "exits"), ("starts", "stops"),
                   ("background", "foreground"), ("leftwards", "rightwards"), ("dark", "light")]
OPPOSITES = {**{a: b for a, b in OPPOSITES_PAIRS}, **{b: a for a, b in OPPOSITES_PAIRS}}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
             "geese": "goose", "sheep": "sheep", "fish": "fish", "deer": "deer"}


def singular(word: str) -> str:
    """'crosses' -> 'cross', 'discs' -> 'disc', 'people' -> 'person' (-s/-es plurals and a few irregular ones)."""
    if word in IRREGULAR:
        return IRREGULAR[word]
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def plural(word: str) -> str:
    irregular = {v: k for k, v in IRREGULAR.items()}
    if word in irregular:
        return irregular[word]
    return word + "es" if word.endswith(("s", "sh", "ch", "x")) else word + "s"


@dataclass
class Lexicon:
    """Word classes with corpus counts (word or phrase -> count), plus the hand-made relations."""

    categories: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    colours: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    textures: dict[str, int] = field(default_factory=dict)
    directions: dict[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    sentences: int = 0

    def synonyms(self, word: str) -> set[str]:
        """The word's synonyms (itself included), from the seeds."""
        out = {word}
        for group in SYNONYMS:
            if word in group:
                out |= group
        return out

    def related(self, a: str, b: str) -> bool:
        """Whether b is a synonym, a hypernym or a hyponym of a (so that swapping them keeps the sentence true)."""
        if b in self.synonyms(a):
            return True
        chain = lambda w: {w} | ({HYPERNYMS[w]} | chain(HYPERNYMS[w]) if w in HYPERNYMS else set())  # noqa: E731
        sa = set().union(*(chain(s) for s in self.synonyms(a)))
        sb = set().union(*(chain(s) for s in self.synonyms(b)))
        return b in sa or a in sb or bool(self.synonyms(a) & sb) or bool(self.synonyms(b) & sa)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        top = lambda d: ", ".join(w for w, _ in sorted(d.items(), key=lambda kv: -kv[1])[:8])  # noqa: E731
        return "; ".join(f"{name} {len(getattr(self, name))} ({top(getattr(self, name))})" for name in
                         ("categories", "actions", "colours", "sizes", "textures", "directions", "positions"))


def _counted(counts: Counter, closed: set[str]) -> dict[str, int]:
    """The words of a closed class that the corpus uses, with their counts, in sorted order: a set's iteration
    order changes with PYTHONHASHSEED, and the rules backend's seeded draws index these dicts in order."""
    return {w: counts[w] for w in sorted(closed) if counts[w]}


def _phrase_counts(sentences: Sequence[str], phrases: Iterable[str]) -> Counter:
    c: Counter = Counter()
    for p in sorted(phrases):  # sorted: `phrases` is a set (SEED_PHRASES) and the order reaches the categories
        pat = re.compile(rf"\b{re.escape(p)}s?\b")
        c[p] = sum(len(pat.findall(s.lower())) for s in sentences)
    return +c


def _content_start(tokens: list[str]) -> int:
    i = 0
    closed = DETERMINERS | COLOURS | SIZES | TEXTURES | POSITIONS
    while i < len(tokens) and (tokens[i] in closed or tokens[i].endswith("-colored")):
        i += 1
    return i


def build_lexicon(sentences: Sequence[str], noun_phrases: Sequence[str] = (), min_count: int = 2) -> Lexicon:
    """Count the word classes over `sentences` (plus `noun_phrases`, e.g. A2D short queries)."""
    tokens = [words(s) for s in sentences]
    counts: Counter = Counter(w for t in tokens for w in t)
    closed = COLOURS | SIZES | TEXTURES | POSITIONS | DIRECTIONS | DETERMINERS | NOT_CATEGORY
    cats: Counter = Counter()
    acts: Counter = Counter()
    firsts = []  # (first content word, the word after it)
    for t in [words(p) for p in noun_phrases] + tokens:
        i = _content_start(t)
        if i < len(t) and t[i] not in closed and len(t[i]) > 1 and not (t[i].endswith("ing") and t[i] not in ACTION_STOP):
            firsts.append((t[i], t[i + 1] if i + 1 < len(t) else ""))
    cats.update(w for w, _ in firsts)
    # a modifier ("cute dog", "basketball player") is mostly followed by another candidate noun: not a category
    before_noun = Counter(w for w, nxt in firsts if nxt in cats and cats[nxt] >= cats[w] / 4 and nxt != w)
    cats = Counter({w: n for w, n in cats.items() if before_noun[w] <= n / 2 and not w.endswith(("ish", "less"))})
    heads = set(cats) | {p.split()[-1] for p in SEED_PHRASES} | {"shape", "shapes", "thing", "things", "one"}
    for t in tokens:
        for j, w in enumerate(t):
            prev = t[j - 1] if j else ""
            if w.endswith("ing") and len(w) > 4 and w not in ACTION_STOP and (
                    prev in {"is", "are", "while", "was", "and", "keeps", "starts"} or prev in heads):
                acts[w] += 1
            elif prev in {"that", "which", "who"} and w.endswith("s") and len(w) > 3 and w not in closed | {"is"}:
                acts[w] += 1
    colours = Counter(_counted(counts, COLOURS))
    for t in tokens:
        for j, w in enumerate(t):
            if w.endswith("-colored") or (j + 1 < len(t) and t[j + 1] in {"colored", "coloured"}):
                colours[w.removesuffix("-colored")] += 1
    phrases = _phrase_counts(sentences, SEED_PHRASES)
    for p, n in phrases.items():  # "plus sign" is one category, counted once: not also as "plus"
        cats[p] += n
        cats[p.split()[0]] -= n
    for w in [w for w in cats if singular(w) != w and singular(w) in cats]:  # "discs" counts as "disc"
        cats[singular(w)] += cats.pop(w)
    cats = +cats
    keep = lambda c: {w: n for w, n in c.items() if n >= min_count}  # noqa: E731
    acts = Counter({w: n for w, n in acts.items() if w not in cats})
    return Lexicon(
        categories=keep(Counter({w: n for w, n in cats.items() if w not in acts and w not in GENERIC})),
        actions=keep(acts), colours=keep(colours),
        sizes=_counted(counts, SIZES), textures=_counted(counts, TEXTURES), directions=_counted(counts, DIRECTIONS),
        positions=_counted(counts, POSITIONS), sentences=len(sentences))


def default_text_dir() -> Path:
    """../shared/data/text beside the checkout (RVOS_SHARED_DATA overrides the data folder)."""
    import os

    env = os.environ.get("RVOS_SHARED_DATA")
    if env:
        return Path(env) / "text"
    return Path(__file__).resolve().parents[4] / "shared" / "data" / "text"


def real_sentences(text_dir: Optional[Path] = None) -> tuple[list[str], list[str]]:
    """(sentences, noun phrases) from the real files of ../shared/data/text: Ref-YouTube-VOS valid/test
    expressions, Ref-DAVIS17 and A2D categorised expressions, A2D-Sentences queries and their short queries."""
    d = Path(text_dir) if text_dir is not None else default_text_dir()
    files = {"ytvos": d / "refytvos_valid_meta_expressions.json",
             "davis": d / "refdavis17_val_expressions_without_holdout.csv",
             "a2d_cat": d / "a2d_RE_categorization.csv", "a2d": d / "a2d_sentences_annotation.txt"}
    for name, path in files.items():
        if not path.is_file():
            raise DatasetError(f"missing real sentence file for the rules lexicon: {path} "
                               f"(expected the files listed in ../shared/data/README.md, or pass --text-dir)")
    sentences, phrases = [], []
    try:
        meta = json.loads(files["ytvos"].read_text())
        for v in meta["videos"].values():
            sentences += [e["exp"] for e in v["expressions"].values()]
        for key in ("davis", "a2d_cat"):
            with open(files[key], newline="") as f:
                sentences += [row["ref_exp"] for row in csv.DictReader(f, delimiter=";") if row.get("ref_exp")]
        with open(files["a2d"], newline="") as f:
            for row in csv.DictReader(f):
                sentences.append(row["query"])
                phrases.append(row["short_query"])
    except (KeyError, ValueError, TypeError) as e:
        raise DatasetError(f"unexpected layout in the real sentence files of {d}: {e}") from None
    return sentences, phrases
