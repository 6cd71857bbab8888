"""Ref-YouTube-VOS layout (also the converted Ref-DAVIS17 layout and the built-in synthetic benchmark).

    root/meta_expressions/<split>/meta_expressions.json   videos -> vid -> {expressions -> id -> {exp, obj_id}, frames}
    root/<split>/JPEGImages/<vid>/<frame>.jpg
    root/<split>/Annotations/<vid>/<frame>.png            palette PNG, pixel value = object id (train only)
    root/<split>/meta.json                                optional: videos -> vid -> objects -> id -> {category, frames}

Optional extras (synthetic benchmark, MeViS-style): `obj_id` a list (multi-object) or [] (no target), `spans`,
`aug_pos`, `hard_neg` per expression, `fps` per video (see common.parse_expression); per-object temporal spans
(MeViS-M style) in `root/meta_expressions/<split>/temporal_spans.json` (layout: rvos.data.spans).

Targets: a frame whose annotation PNG exists is a MASK target (`png == obj_id`, empty when the object is not
there); a frame without a PNG, or any frame of a split without `Annotations/`, is a NONE target. Tracks exist for
every object an expression or meta.json names, so `record.tracks[obj_id]` works for every positive expression.
Expressions without `obj_id` (the real valid/test files) refer to `UNKNOWN_OBJ_ID`, whose track is all NONE.
"""
from __future__ import annotations

from pathlib import Path

from rvos.data.readers.common import frame_names_of, folder_video, load_json, natural_key_str, parse_expression, png_targets
from rvos.data.spans import SPANS_FILE, attach_spans, read_spans_file
from rvos.data.types import ObjectTrack, VideoRecord
from rvos.errors import DatasetError

SPLIT_ALIASES = {"val": "valid"}


def meta_expressions_path(root: Path, split: str) -> Path:
    return Path(root) / "meta_expressions" / split / "meta_expressions.json"


def read_categories(meta_path: Path) -> dict[str, dict[int, str]]:
    """vid -> obj_id -> category from an optional `<split>/meta.json`; {} when the file is absent."""
    if not meta_path.is_file():
        return {}
    data = load_json(meta_path, "Ref-YouTube-VOS meta.json")
    out: dict[str, dict[int, str]] = {}
    for vid, v in data["videos"].items():
        objects = v.get("objects", {}) if isinstance(v, dict) else {}
        out[vid] = {int(k): o.get("category") for k, o in objects.items() if isinstance(o, dict)}
    return out


def read_ytvos(root: Path | str, split: str = "train", fps: float | None = None) -> list[VideoRecord]:
    """Records of one split of a Ref-YouTube-VOS layout root, sorted by video id."""
    root = Path(root)
    split = SPLIT_ALIASES.get(split, split)
    exp_path = meta_expressions_path(root, split)
    meta = load_json(exp_path, "Ref-YouTube-VOS meta_expressions")
    categories = read_categories(root / split / "meta.json")
    img_root, ann_root = root / split / "JPEGImages", root / split / "Annotations"
    records = []
    for vid in sorted(meta["videos"]):
        v = meta["videos"][vid]
        where = f"video {vid!r} of {exp_path}"
        names = frame_names_of(v, where)
        video = folder_video(vid, img_root / vid, names, ".jpg", float(v.get("fps") or fps or 24.0))
        exps = [parse_expression(k, v["expressions"][k], where) for k in sorted(v["expressions"], key=natural_key_str)]
        cats = categories.get(vid, {})
        obj_ids = sorted({o for e in exps for o in e.obj_ids} | set(cats))
        ann_dir = ann_root / vid if (ann_root / vid).is_dir() else None
        present = {p.stem for p in ann_dir.glob("*.png")} if ann_dir else set()
        tracks = {o: ObjectTrack(o, png_targets(ann_dir, names, o, present), cats.get(o)) for o in obj_ids}
        records.append(VideoRecord(video, tracks, exps, split))
    spans_path = exp_path.parent / SPANS_FILE
    return attach_spans(records, read_spans_file(spans_path), spans_path)
