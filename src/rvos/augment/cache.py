"""The augmentation cache: one JSON object a line, written by `rvos augment`, read by training (`data.augment`).

Line 1 is a header: {"rvos_augment": 1, "backend", "scorer", "threshold", "positives", "negatives", "dataset",
"split", ...}. Every further line is one expression:

  {"video": "<video id>", "exp_id": "<id>", "text": "<original expression>",
   "positives": [{"text": ..., "score": 0.91, "kept": true}, ...],      # kept: score >= the filter's threshold
   "negatives": [{"text": ..., "changed": "category" | "attribute" | "action", "slot": ...}, ...]}

Resuming: a line is written whole, flushed and fsynced before the next expression is started, so a killed run
leaves at most a partial last line, with no newline; the writer cuts it off on opening and the reader ignores
it. Anything else that does not parse is an error naming the file and the line. A header that differs from the
one the run would write (another backend, scorer, threshold or count) is refused: use another --out.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

from rvos.data.types import VideoRecord
from rvos.errors import DatasetError

FORMAT = 1


@dataclass
class ScoredText:
    text: str
    score: float = 1.0
    kept: bool = True


@dataclass
class NegativeText:
    text: str
    changed: str = ""  # category | attribute | action ("" when the backend does not say)
    slot: str = ""


@dataclass
class AugEntry:
    video: str
    exp_id: str
    text: str
    positives: list[ScoredText] = field(default_factory=list)
    negatives: list[NegativeText] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return self.video, self.exp_id

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "AugEntry":
        return cls(video=str(d["video"]), exp_id=str(d["exp_id"]), text=str(d["text"]),
                   positives=[ScoredText(str(p["text"]), float(p.get("score", 1.0)), bool(p.get("kept", True)))
                              for p in d.get("positives", [])],
                   negatives=[NegativeText(str(n["text"]), str(n.get("changed", "")), str(n.get("slot", "")))
                              for n in d.get("negatives", [])])


def read_augmentation(path: str | Path) -> tuple[dict, dict[tuple[str, str], AugEntry]]:
    """(header, entries by (video, exp_id)). A partial last line (a killed run) is ignored."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing augmentation file: {path} (write one with `rvos augment DATASET --out {path}`)")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if not raw.endswith(b"\n"):
        lines = lines[:-1]  # the partial tail of a killed run
    header, entries = None, {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except ValueError as e:
            raise DatasetError(f"{path}:{n}: not a JSON object ({e})") from None
        if header is None:
            if not isinstance(d, dict) or d.get("rvos_augment") != FORMAT:
                raise DatasetError(f"{path}:{n}: expected the header line {{\"rvos_augment\": {FORMAT}, ...}}, "
                                   f"got {line[:80]!r}")
            header = d
            continue
        try:
            e = AugEntry.from_dict(d)
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{path}:{n}: expected an entry with video, exp_id, text, positives, negatives "
                               f"({err!r})") from None
        entries[e.key] = e
    if header is None:
        raise DatasetError(f"{path}: empty augmentation file (no header line)")
    return header, entries


class AugWriter:
    """Appends entries to a cache file, one whole line at a time (thread-safe)."""

    def __init__(self, path: str | Path, header: dict, compare: Optional[Sequence[str]] = None):
        """`compare`: the header keys a resumed file must match (default all; e.g. not the dataset's path)."""
        self.path = Path(path)
        self.header = {"rvos_augment": FORMAT, **header}
        keys = ["rvos_augment", *(compare if compare is not None else header)]
        self.done: dict[tuple[str, str], AugEntry] = {}
        self._lock = threading.Lock()
        if self.path.is_file() and self.path.stat().st_size:
            raw = self.path.read_bytes()
            if not raw.endswith(b"\n"):  # a killed run's partial last line: cut it off
                with open(self.path, "r+b") as f:
                    f.truncate(raw.rfind(b"\n") + 1)
            if self.path.stat().st_size:
                old, self.done = read_augmentation(self.path)
                diff = {k: (old.get(k), self.header.get(k)) for k in keys if old.get(k) != self.header.get(k)}
                if diff:
                    raise DatasetError(f"{self.path} was written with other settings {diff} (file, this run); "
                                       "use another --out or the same settings to resume")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")
        if not self.path.stat().st_size:
            self._write_line(json.dumps(self.header, ensure_ascii=False))

    def _write_line(self, line: str) -> None:
        self._f.write(line + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def write(self, entry: AugEntry) -> None:
        with self._lock:
            self._write_line(entry.to_json())
            self.done[entry.key] = entry

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "AugWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Coverage:
    expressions: int  # positive expressions of the records
    covered: int  # of them with an entry
    positives_kept: int
    positives_dropped: int
    negatives: int


def apply_augmentation(records: Sequence[VideoRecord], entries: dict[tuple[str, str], AugEntry],
                       threshold: Optional[float] = None, source: str = "augmentation file"
                       ) -> tuple[list[VideoRecord], Coverage]:
    """Records whose expressions carry the file's positives (those kept, or with `threshold` those scoring at
    least that) and hard negatives; expressions without an entry get none. An entry whose text is not the
    expression's is an error (the file was made from another version of the dataset)."""
    out, n = [], dict(expressions=0, covered=0, positives_kept=0, positives_dropped=0, negatives=0)
    for rec in records:
        exps = []
        for e in rec.expressions:
            entry = entries.get((rec.video_id, e.exp_id))
            n["expressions"] += e.positive
            if entry is None:
                exps.append(replace(e, augmented_positives=[], hard_negatives=[]))
                continue
            if " ".join(entry.text.split()) != " ".join(e.text.split()):
                raise DatasetError(f"{source}: video {rec.video_id!r} expression {e.exp_id!r} reads {e.text!r} in "
                                   f"the dataset but {entry.text!r} in the file (made from another dataset?)")
            keep = [p for p in entry.positives if (p.kept if threshold is None else p.score >= threshold)]
            n["covered"] += e.positive
            n["positives_kept"] += len(keep)
            n["positives_dropped"] += len(entry.positives) - len(keep)
            n["negatives"] += len(entry.negatives)
            exps.append(replace(e, augmented_positives=[p.text for p in keep],
                                hard_negatives=[x.text for x in entry.negatives]))
        out.append(replace(rec, expressions=exps))
    cov = Coverage(**n)
    if cov.expressions and not cov.covered:
        raise DatasetError(f"{source} covers none of the {cov.expressions} positive expressions of these records "
                           "(made for another dataset or split?)")
    return out, cov
