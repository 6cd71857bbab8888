"""Ref-DAVIS17: a DAVIS-2017 folder with referring expressions.

    <davis>/JPEGImages/480p/<seq>/NNNNN.jpg, <davis>/Annotations/480p/<seq>/NNNNN.png, <davis>/ImageSets/2017/<split>.txt
    (<davis> is `root` or `root/DAVIS`). Annotation PNGs are palette PNGs (index = object id) or DAVIS-2016
    binary 0/255 masks (object 1).
Expressions, either
    root/meta_expressions/{valid,train}/meta_expressions.json   (converted Ref-YouTube-VOS layout), or
    Khoreva et al.'s text files Davis17_annot{1,2}[_full_video].txt (in root, root/davis_text_annotations or
    <davis>): one line per object, `seq obj_id "expression"`, latin-1.
`expressions="auto"` takes the JSON when present, else `annot1_full_video`. Frames are the .jpg files of the
sequence folder (the JSON's `frames` list is not needed). Every frame with a PNG is a MASK target; tracks are the
objects of the first frame's PNG plus any object an expression names.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rvos.data.readers.common import load_json, natural_key_str, parse_expression, png_targets, read_index_png
from rvos.data.frames import FrameFolder, natural_key
from rvos.data.types import Expression, ObjectTrack, Video, VideoRecord, require_file
from rvos.errors import DatasetError

KHOREVA_FILES = {k: f"Davis17_{k}.txt" for k in ("annot1", "annot2", "annot1_full_video", "annot2_full_video")}
_LINE = re.compile(r'^(\S+)\s+(\d+)\s+"?(.*?)"?\s*$')


def davis_dir(root: Path) -> Path:
    """The folder holding JPEGImages/ImageSets: `root` itself or `root/DAVIS`."""
    return root if (root / "JPEGImages").is_dir() or not (root / "DAVIS").is_dir() else root / "DAVIS"


def parse_khoreva(path: Path) -> dict[str, list[Expression]]:
    """seq -> expressions of one Khoreva annotation file (`seq obj_id "sentence"` per line, latin-1)."""
    out: dict[str, list[Expression]] = {}
    for n, line in enumerate(require_file(path, "Ref-DAVIS17 expression file").read_bytes().decode("latin-1").splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if not m or not m.group(3).strip():
            raise DatasetError(f'malformed line {n} of {path}: expected `sequence obj_id "expression"`, got {line!r}')
        exps = out.setdefault(m.group(1), [])
        exps.append(Expression(str(len(exps)), m.group(3).strip(), [int(m.group(2))]))
    return out


def _json_expressions(path: Path) -> dict[str, list[Expression]]:
    meta = load_json(path, "Ref-DAVIS17 meta_expressions")
    return {
        vid: [parse_expression(k, v["expressions"][k], f"video {vid!r} of {path}") for k in sorted(v.get("expressions", {}), key=natural_key_str)]
        for vid, v in meta["videos"].items()
    }


def find_expressions(root: Path, split: str, expressions: str = "auto") -> dict[str, list[Expression]]:
    """Expressions per sequence from the JSON (`expressions` "json"/"auto") or a Khoreva file (its key)."""
    json_path = root / "meta_expressions" / ("valid" if split == "val" else split) / "meta_expressions.json"
    if expressions == "json" or (expressions == "auto" and json_path.is_file()):
        return _json_expressions(json_path)
    key = "annot1_full_video" if expressions == "auto" else expressions
    if key not in KHOREVA_FILES:
        raise DatasetError(f"unknown Ref-DAVIS17 expression source {expressions!r}; expected auto, json or {sorted(KHOREVA_FILES)}")
    name = KHOREVA_FILES[key]
    for folder in (root, root / "davis_text_annotations", davis_dir(root)):
        if (folder / name).is_file():
            return parse_khoreva(folder / name)
    raise DatasetError(f"missing Ref-DAVIS17 expressions: neither {json_path} nor {name} in {root} or {root / 'davis_text_annotations'}")


def read_davis(root: Path | str, split: str = "val", expressions: str = "auto", resolution: str = "480p") -> list[VideoRecord]:
    """Records of the sequences of `ImageSets/2017/<split>.txt` that have expressions, in file order."""
    root = Path(root)
    split = "val" if split == "valid" else split
    d = davis_dir(root)
    list_path = require_file(d / "ImageSets" / "2017" / f"{split}.txt", f"DAVIS-2017 sequence list for split {split!r}")
    seqs = [s.strip() for s in list_path.read_text().splitlines() if s.strip()]
    exps_by_seq = find_expressions(root, split, expressions)
    records = []
    for seq in seqs:
        if seq not in exps_by_seq:
            continue
        folder = d / "JPEGImages" / resolution / seq
        frames = sorted(folder.glob("*.jpg"), key=lambda p: natural_key(p.name)) if folder.is_dir() else []
        if not frames:
            raise DatasetError(f"sequence {seq!r} of {list_path} has no frames in {folder}")
        src = FrameFolder(frames)
        h, w = src.size()
        video = Video(seq, src, h, w, 24.0)
        ann_dir = d / "Annotations" / resolution / seq
        ann_dir = ann_dir if ann_dir.is_dir() else None
        present = {p.stem for p in ann_dir.glob("*.png")} if ann_dir else set()
        obj_ids = {o for e in exps_by_seq[seq] for o in e.obj_ids}
        if ann_dir and src.names[0] in present:  # objects of the first annotated frame
            obj_ids |= {int(i) for i in np.unique(read_index_png(str(ann_dir / f"{src.names[0]}.png"))) if i}
        tracks = {o: ObjectTrack(o, png_targets(ann_dir, src.names, o, present)) for o in sorted(obj_ids)}
        records.append(VideoRecord(video, tracks, exps_by_seq[seq], split))
    if not records:
        raise DatasetError(f"no sequence of {list_path} has an expression (sequences: {seqs[:5]}...)")
    return records
