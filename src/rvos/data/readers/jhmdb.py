"""JHMDB-Sentences layout (one actor per video, a puppet mask on every frame).

    root/jhmdb_annotation.txt                              CSV `video_id,query`
    root/Rename_Images/<class>/<vid>/%05d.png              frames, 1-based
    root/puppet_mask/<class>/<vid>/puppet_mask.mat         `part_mask` [H, W, T] (MATLAB v7.3 files: HDF5 [T, W, H])

The actor is object 1. Frames t < T of the mask are MASK targets, later frames (if the mask is shorter than the
video) NONE. The .mat header gives T without loading the pixels; the pixels are loaded once per video on demand.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rvos.data.frames import IMAGE_EXTS, FrameFolder, natural_key
from rvos.data.types import Expression, FrameTarget, MaskRef, ObjectTrack, TargetKind, Video, VideoRecord, require_file
from rvos.errors import DatasetError

ACTOR_ID = 1


def _h5_mask(path: str, shape_only: bool):
    import h5py

    with h5py.File(path, "r") as f:
        if "part_mask" not in f:
            raise DatasetError(f"{path} has no 'part_mask'")
        ds = f["part_mask"]
        return ds.shape[::-1] if shape_only else np.asarray(ds[()]).transpose(2, 1, 0)  # [T, W, H] -> [H, W, T]


def puppet_mask_shape(path: str) -> tuple[int, ...]:
    """(H, W, T) of `part_mask` from the .mat header (scipy.io.whosmat) or the HDF5 dataset shape (v7.3)."""
    import scipy.io

    try:
        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        return tuple(_h5_mask(path, shape_only=True))
    except (ValueError, OSError, TypeError, scipy.io.matlab.MatReadError) as e:
        import h5py

        if h5py.is_hdf5(path):
            return tuple(_h5_mask(path, shape_only=True))
        raise DatasetError(f"not a readable MATLAB file: {path} ({e})") from None
    if "part_mask" not in shapes:
        raise DatasetError(f"{path} has no 'part_mask' (variables: {sorted(shapes)})")
    return shapes["part_mask"]


@lru_cache(maxsize=4)
def load_puppet_mask(path: str) -> np.ndarray:
    """bool [H, W, T] puppet masks of one video."""
    import h5py
    import scipy.io

    if h5py.is_hdf5(path):
        return _h5_mask(path, shape_only=False) > 0
    try:
        return np.asarray(scipy.io.loadmat(path, variable_names=["part_mask"])["part_mask"]) > 0
    except (ValueError, OSError, KeyError, TypeError, scipy.io.matlab.MatReadError) as e:
        raise DatasetError(f"cannot read 'part_mask' from {path}: {e}") from None


@dataclass(frozen=True)
class PuppetMask(MaskRef):
    path: str
    frame: int

    def load(self) -> np.ndarray:  # bool [H, W]
        masks = load_puppet_mask(self.path)
        return masks[..., self.frame] if masks.ndim == 3 else masks


def read_jhmdb(root: Path | str, split: str = "all") -> list[VideoRecord]:
    """Records of all JHMDB-Sentences videos (the benchmark has one evaluation set), in file order."""
    root = Path(root)
    ann = require_file(root / "jhmdb_annotation.txt", "JHMDB-Sentences annotation file")
    with open(ann, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"video_id", "query"} <= set(reader.fieldnames or ()):
            raise DatasetError(f"{ann} must have the CSV header video_id,query; got {reader.fieldnames}")
        rows = [(r["video_id"], (r["query"] or "").strip()) for r in reader]
    class_of = {p.name: p.parent.name for p in (root / "Rename_Images").glob("*/*") if p.is_dir()}
    records, seen = [], {}
    for vid, text in rows:
        if not text:
            raise DatasetError(f"{ann}: empty sentence for video {vid!r}")
        if vid in seen:
            seen[vid].expressions.append(Expression(str(len(seen[vid].expressions)), text, [ACTOR_ID]))
            continue
        if vid not in class_of:
            raise DatasetError(f"missing frame folder of JHMDB video {vid!r}: no {root / 'Rename_Images'}/<class>/{vid}")
        folder = root / "Rename_Images" / class_of[vid] / vid
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=lambda p: natural_key(p.name))
        if not files:
            raise DatasetError(f"JHMDB frame folder has no images: {folder}")
        src = FrameFolder(files)
        video = Video(vid, src, *src.size(), 30.0)
        mat = str(require_file(root / "puppet_mask" / class_of[vid] / vid / "puppet_mask.mat", f"puppet mask of {vid!r}"))
        shape = puppet_mask_shape(mat)
        n_masks = shape[2] if len(shape) == 3 else 1
        targets = [FrameTarget(TargetKind.MASK, mask=PuppetMask(mat, t)) if t < n_masks else FrameTarget() for t in range(len(video))]
        seen[vid] = VideoRecord(video, {ACTOR_ID: ObjectTrack(ACTOR_ID, targets)}, [Expression("0", text, [ACTOR_ID])], split)
        records.append(seen[vid])
    return records
