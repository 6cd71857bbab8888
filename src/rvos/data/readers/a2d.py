"""A2D-Sentences layout (actor-action videos; one sentence per actor instance; a few annotated frames a video).

    root/text_annotations/a2d_annotation.txt                    CSV `video_id,instance_id,query[,short_query]`
    root/text_annotations/a2d_annotation_with_instances/<vid>/<frame:05d>.h5
        `instance`: the instance ids of that frame; `reMask`: masks stored transposed, [W, H] for one instance or
        [N, W, H] for several. Frame numbers are 1-based (00001 = the first frame).
    root/Release/videoset.csv                                   no header: video_id, label, start, end, height, width,
                                                                n_frames, n_annotated, split (0 train, 1 test)
    root/Release/clips320H/<vid>.mp4  or  root/Release/frames/<vid>/%05d.{png,jpg} (1-based)

An instance gets a MASK target on each frame with an .h5 file (empty when that frame does not list it) and NONE
targets elsewhere.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rvos.data.frames import IMAGE_EXTS, FrameFolder, VideoFileFrames, natural_key
from rvos.data.types import Expression, FrameTarget, MaskRef, ObjectTrack, TargetKind, Video, VideoRecord, require_file
from rvos.errors import DatasetError

SPLITS = {"train": {"0"}, "test": {"1"}, "all": {"0", "1"}}


def parse_a2d_annotation(path: Path) -> dict[str, list[tuple[int, str]]]:
    """video_id -> [(instance_id, sentence)] in file order, from the CSV (with or without `short_query`)."""
    with open(require_file(path, "A2D-Sentences annotation file"), newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"video_id", "instance_id", "query"} <= set(reader.fieldnames or ()):
            raise DatasetError(f"{path} must have the CSV header video_id,instance_id,query; got {reader.fieldnames}")
        out: dict[str, list[tuple[int, str]]] = {}
        for n, row in enumerate(reader, 2):
            m = re.match(r"\s*(\d+)", row["instance_id"] or "")  # the real file has one "1 (copy)" (as MTTR reads it: 1)
            if not m:
                raise DatasetError(f"line {n} of {path}: instance_id must be an int, got {row['instance_id']!r}")
            inst = int(m.group(1))
            if not (row["query"] or "").strip():
                raise DatasetError(f"line {n} of {path}: empty sentence")
            out.setdefault(row["video_id"], []).append((inst, row["query"].strip()))
    return out


def read_videoset(path: Path) -> dict[str, str]:
    """video_id -> split code ('0' train, '1' test) from Release/videoset.csv."""
    with open(require_file(path, "A2D videoset.csv"), newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if any(len(r) < 9 for r in rows):
        raise DatasetError(f"{path}: every row needs 9 columns (video_id ... split)")
    return {r[0]: r[8].strip() for r in rows}


@lru_cache(maxsize=16)
def read_a2d_h5(path: str) -> tuple[list[int], np.ndarray]:
    """(instance ids, bool masks [N, H, W]) of one annotated frame; reMask is transposed back from [N, W, H]."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            ids = [int(i) for i in np.asarray(f["instance"][()]).ravel()]
            re_mask = np.asarray(f["reMask"][()])
    except (OSError, KeyError) as e:
        raise DatasetError(f"unreadable A2D annotation {path} (expected HDF5 with 'instance' and 'reMask'): {e}") from None
    masks = re_mask.T[None] if re_mask.ndim == 2 else re_mask.transpose(0, 2, 1)  # [N, H, W]
    if masks.shape[0] != len(ids):
        raise DatasetError(f"{path}: {len(ids)} instance ids but {masks.shape[0]} masks")
    return ids, masks > 0


@dataclass(frozen=True)
class A2DMask(MaskRef):
    path: str
    instance: int

    def load(self) -> np.ndarray:  # bool [H, W]
        ids, masks = read_a2d_h5(self.path)
        return masks[ids.index(self.instance)] if self.instance in ids else np.zeros(masks.shape[1:], bool)


def a2d_video(root: Path, vid: str) -> Video:
    """Extracted frames (Release/frames/<vid>) when present, else the clip Release/clips320H/<vid>.mp4."""
    folder = root / "Release" / "frames" / vid
    if folder.is_dir():
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=lambda p: natural_key(p.name))
        if not files:
            raise DatasetError(f"A2D frame folder has no images: {folder}")
        src = FrameFolder(files)
        return Video(vid, src, *src.size(), 24.0)
    clip = root / "Release" / "clips320H" / f"{vid}.mp4"
    if not clip.is_file():
        raise DatasetError(f"missing A2D video {vid!r}: neither {folder} nor {clip}")
    src = VideoFileFrames(clip)
    return Video(vid, src, src.height, src.width, src.fps)


def read_a2d(root: Path | str, split: str = "test") -> list[VideoRecord]:
    """Records of the A2D-Sentences videos of `split` (train, test or all) that have sentences, sorted by id."""
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"unknown A2D split {split!r}; expected one of {sorted(SPLITS)}")
    ann = root / "text_annotations" / "a2d_annotation.txt"
    sentences = parse_a2d_annotation(ann)
    splits = read_videoset(root / "Release" / "videoset.csv")
    records = []
    for vid in sorted(v for v in sentences if splits.get(v) in SPLITS[split]):
        video = a2d_video(root, vid)
        h5_dir = root / "text_annotations" / "a2d_annotation_with_instances" / vid
        annotated = {int(p.stem) - 1: str(p) for p in h5_dir.glob("*.h5")} if h5_dir.is_dir() else {}
        if any(not 0 <= t < len(video) for t in annotated):
            raise DatasetError(f"{h5_dir} annotates frames {sorted(annotated)} (1-based + 1) beyond the video's {len(video)} frames")
        tracks = {
            inst: ObjectTrack(inst, [FrameTarget(TargetKind.MASK, mask=A2DMask(annotated[t], inst)) if t in annotated else FrameTarget() for t in range(len(video))])
            for inst in sorted({i for i, _ in sentences[vid]})
        }
        exps = [Expression(str(k), text, [inst]) for k, (inst, text) in enumerate(sentences[vid])]
        records.append(VideoRecord(video, tracks, exps, split))
    return records
