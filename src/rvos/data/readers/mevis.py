"""MeViS layout (motion expressions; multi-object and no-target sentences).

    root/<split>/meta_expressions.json   videos -> vid -> {expressions -> id -> {exp, obj_id: [int], anno_id: [int]}, frames}
    root/<split>/JPEGImages/<vid>/<frame>.jpg
    root/<split>/mask_dict.json          anno_id (str) -> one COCO RLE {"size": [h, w], "counts": str} or null per frame
    root/<split>/temporal_spans.json     optional (MeViS-M): per (expression, object) the frames it is referred to
                                         (layout and checks: rvos.data.spans)

Tracks are keyed by obj_id; an object's masks come from the anno_id paired with it in its expressions. Every
frame of a split with `mask_dict.json` is a MASK target (null -> empty mask: annotated, not visible); a split
without it (MeViS `valid`, scored online) has NONE targets. An empty `obj_id` list is a no-target expression.
`mask_dict.json` is large: it is parsed once, on the first mask that is loaded, and kept for the process.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rvos.data.readers.common import frame_names_of, UNKNOWN_OBJ_ID, folder_video, load_json, natural_key_str, none_targets, parse_expression
from rvos.data.spans import SPANS_FILE, attach_spans, read_spans_file
from rvos.data.types import FrameTarget, MaskRef, ObjectTrack, TargetKind, VideoRecord
from rvos.errors import DatasetError


@lru_cache(maxsize=2)
def load_mask_dict(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"missing MeViS mask_dict.json: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"malformed JSON in MeViS mask_dict {path}: {e}") from None
    if not isinstance(data, dict):
        raise DatasetError(f"MeViS mask_dict {path} must map anno_id -> list of RLEs")
    return data


@dataclass(frozen=True)
class RLEMask(MaskRef):
    """Frame `frame` of annotation `anno_id` in a MeViS mask_dict.json; null -> empty [height, width] mask."""

    path: str
    anno_id: str
    frame: int
    height: int
    width: int

    def load(self) -> np.ndarray:  # bool [H, W]
        from pycocotools import mask as mask_utils

        per_frame = load_mask_dict(self.path).get(self.anno_id)
        if per_frame is None or self.frame >= len(per_frame):
            raise DatasetError(f"anno_id {self.anno_id} has no entry for frame {self.frame} in {self.path}")
        rle = per_frame[self.frame]
        if rle is None:
            return np.zeros((self.height, self.width), bool)
        try:
            counts = rle["counts"].encode("ascii") if isinstance(rle["counts"], str) else rle["counts"]
            with warnings.catch_warnings():  # pycocotools' numpy-2 copy= deprecation notice
                warnings.simplefilter("ignore", DeprecationWarning)
                return mask_utils.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"bad RLE for anno_id {self.anno_id} frame {self.frame} in {self.path}: {e}") from None


def read_mevis(root: Path | str, split: str = "valid_u", fps: float = 6.0) -> list[VideoRecord]:
    """Records of one MeViS split (train, valid_u or valid), sorted by video id. MeViS frames are 6 fps."""
    root = Path(root)
    exp_path = root / split / "meta_expressions.json"
    meta = load_json(exp_path, "MeViS meta_expressions")
    mask_path = root / split / "mask_dict.json"
    has_masks = mask_path.is_file()
    records = []
    for vid in sorted(meta["videos"]):
        v = meta["videos"][vid]
        where = f"video {vid!r} of {exp_path}"
        names = frame_names_of(v, where)
        video = folder_video(vid, root / split / "JPEGImages" / vid, names, ".jpg", fps)
        exps, anno_of = [], {}
        for k in sorted(v["expressions"], key=natural_key_str):
            raw = v["expressions"][k]
            exp = parse_expression(k, raw, where)
            annos = raw.get("anno_id") if isinstance(raw, dict) else None
            if annos is not None and exp.obj_ids != [UNKNOWN_OBJ_ID]:
                if not isinstance(annos, list) or len(annos) != len(exp.obj_ids):
                    raise DatasetError(f"expression {k!r} in {where}: anno_id {annos!r} must pair with obj_id {raw.get('obj_id')!r}")
                for o, a in zip(exp.obj_ids, annos):
                    anno_of.setdefault(o, str(a))
            exps.append(exp)
        tracks = {}
        for o in sorted({o for e in exps for o in e.obj_ids}):
            if has_masks and o in anno_of:
                targets = [FrameTarget(TargetKind.MASK, mask=RLEMask(str(mask_path), anno_of[o], t, video.height, video.width)) for t in range(len(names))]
            else:
                targets = none_targets(len(names))
            tracks[o] = ObjectTrack(o, targets)
        records.append(VideoRecord(video, tracks, exps, split))
    spans_path = root / split / SPANS_FILE
    return attach_spans(records, read_spans_file(spans_path), spans_path)
