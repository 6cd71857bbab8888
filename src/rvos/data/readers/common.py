"""Pieces every reader shares: index-PNG masks with a small decode cache, JSON loading with clear errors,
frame folders, and parsing of one Ref-YouTube-VOS style expression (with the optional extra keys)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from rvos.data.frames import FrameFolder
from rvos.data.types import Expression, FrameTarget, MaskRef, TargetKind, Video, require_file
from rvos.errors import DatasetError

UNKNOWN_OBJ_ID = -1
"""Object id of expressions whose file does not say which object they refer to (Ref-YouTube-VOS valid/test
have only `exp`). Such a record has one track with this id whose targets are all NONE."""


@lru_cache(maxsize=32)
def read_index_png(path: str) -> np.ndarray:
    """uint8 [H, W] object ids of an annotation PNG, cached (several objects share one PNG).
    Palette ('P') PNG: the palette index is the object id. A binary 'L'/'1' image (DAVIS-2016, values only
    {0, 255}): pixel > 127 -> object 1. Another 'L' image: the grey value is the object id."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DatasetError(f"missing annotation PNG: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"corrupt annotation PNG: {path} ({e})") from None
    if mode == "1":
        arr = arr.astype(np.uint8)
    elif mode == "L":
        if np.isin(arr, (0, 255)).all():
            arr = (arr > 127).astype(np.uint8)
    elif mode != "P":
        raise DatasetError(f"annotation PNG must be a palette or grey image, got mode {mode}: {path}")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class PaletteMask(MaskRef):
    """Mask of object `obj_id` in an index PNG: `png == obj_id` (picklable, decoded on demand)."""

    path: str
    obj_id: int

    def load(self) -> np.ndarray:  # bool [H, W]
        return read_index_png(self.path) == self.obj_id


def load_json(path: Path, what: str, keys: Sequence[str] = ("videos",)) -> dict:
    """Parse a JSON file, raising DatasetError naming it when missing, malformed or lacking `keys`."""
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"malformed JSON in {what} {path}: {e}") from None
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise DatasetError(f"{what} {path} must be a JSON object with key(s) {list(keys)}")
    return data


def frame_names_of(entry: Any, where: str) -> list[str]:
    """The frame names of one video entry of a meta_expressions.json, checking the entry's shape."""
    if not isinstance(entry, dict) or not isinstance(entry.get("frames"), list) or not isinstance(entry.get("expressions"), dict):
        raise DatasetError(f"{where} needs a 'frames' list and an 'expressions' object")
    return [str(n) for n in entry["frames"]]


def folder_video(video_id: str, folder: Path, names: Sequence[str], ext: str = ".jpg", fps: float = 24.0) -> Video:
    """A Video over `folder/<name><ext>`; checks the folder and its first frame (size from its header)."""
    if not folder.is_dir():
        raise DatasetError(f"missing frame folder for video {video_id!r}: {folder}")
    if not names:
        raise DatasetError(f"video {video_id!r} lists no frames (folder {folder})")
    src = FrameFolder([folder / f"{n}{ext}" for n in names])
    require_file(src.paths[0], f"first frame of video {video_id!r}")
    h, w = src.size()
    return Video(video_id, src, h, w, fps)


def _obj_ids(raw: Any, where: str) -> list[int]:
    if raw is None:
        return [UNKNOWN_OBJ_ID]
    items = raw if isinstance(raw, list) else [raw]
    try:
        return [int(x) for x in items]
    except (TypeError, ValueError):
        raise DatasetError(f"obj_id must be an int, a string of one or a list of them, got {raw!r} in {where}") from None


def parse_expression(exp_id: str, raw: Any, where: str) -> Expression:
    """One expression dict: `exp`, `obj_id` (int/str, a list of them, [] for a negative, absent = unknown),
    optional `spans` [[s, e], ...] half-open, `aug_pos` and `hard_neg` lists of sentences."""
    if not isinstance(raw, dict) or not isinstance(raw.get("exp"), str) or not raw["exp"].strip():
        raise DatasetError(f"expression {exp_id!r} in {where} needs a non-empty string 'exp', got {raw!r}")
    spans = raw.get("spans")
    if spans is not None:
        try:
            spans = [(int(s), int(e)) for s, e in spans]
        except (TypeError, ValueError):
            raise DatasetError(f"expression {exp_id!r} in {where}: 'spans' must be [[start, end], ...], got {spans!r}") from None
        if any(e <= s or s < 0 for s, e in spans):
            raise DatasetError(f"expression {exp_id!r} in {where}: spans must have 0 <= start < end, got {spans}")
    return Expression(
        exp_id=str(exp_id),
        text=raw["exp"].strip(),
        obj_ids=_obj_ids(raw.get("obj_id"), where),
        spans=spans,
        augmented_positives=[str(s) for s in raw.get("aug_pos", [])],
        hard_negatives=[str(s) for s in raw.get("hard_neg", [])],
    )


def none_targets(n: int) -> list[FrameTarget]:
    return [FrameTarget(TargetKind.NONE) for _ in range(n)]


def png_targets(ann_dir: Path | None, names: Sequence[str], obj_id: int, present: set[str] | None = None) -> list[FrameTarget]:
    """MASK targets `png == obj_id` for frames whose PNG exists in `ann_dir` (`present`: the PNG stems there,
    listed once per video), NONE for the others or when there is no annotation folder."""
    if ann_dir is None or obj_id == UNKNOWN_OBJ_ID:
        return none_targets(len(names))
    if present is None:
        present = {p.stem for p in ann_dir.glob("*.png")}
    return [
        FrameTarget(TargetKind.MASK, mask=PaletteMask(str(ann_dir / f"{n}.png"), obj_id)) if n in present else FrameTarget()
        for n in names
    ]


def natural_key_str(name: str) -> tuple:
    """Sort key for expression ids: numeric ids by value, others after them by text."""
    return (0, int(name), "") if str(name).isdigit() else (1, 0, str(name))
