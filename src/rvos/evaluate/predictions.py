"""Where predicted masks come from: a folder of PNGs, an RLE JSON, or memory (a model run, tests).

Every source answers `mask(video, unit, frame_index) -> bool [H, W]` for a scoring unit (an object or an
expression, see `rvos.evaluate.protocols.Unit`), plus optional per-expression `score`, `present` and `spans`.

On-disk layouts (`open_predictions` tells them apart):
- object level, DAVIS style: `PRED/<video>/<frame>.png`, palette/label PNGs whose value is the object id. An
  expression's prediction is the union of its objects' ids; a no-target expression cannot be expressed.
- expression level, Ref-YouTube-VOS submission style: `PRED/<video>/<exp_id>/<frame>.png`, binary masks
  (0/255, 0/1 or a palette PNG with index 1): every non-zero pixel is foreground.
- RLE JSON (`*.json`), expression level:
      {"<video>": {"<exp_id>": {"masks": {"<frame>": RLE or null, ...},
                                "score": 0.9, "present": true, "spans": [[start, end], ...]}}}
  `<frame>` is the frame name (file stem, e.g. "00005") or its index as a string; RLE is COCO compressed RLE
  {"size": [H, W], "counts": str}; null is an empty mask. `score` (default 1, used by the A2D mAP), `present`
  (false makes every mask empty: a gated "the object is not in this video") and `spans` (half-open frame
  intervals where the sentence holds, for the grounding protocol) are optional. The short form
  {"<video>": {"<exp_id>": {"<frame>": RLE or null}}} (no "masks" key) is accepted too.
- a benchmark submission zip (`*.zip`), expression level: `[<folder>/]<video>/<exp_id>/<frame>.png`, e.g.
  `Annotations/...` (Ref-YouTube-VOS) or the video folders at the top (MeViS); every PNG in it must sit under
  the same folder. Non-zero pixels are foreground. `rvos eval --checkpoint C --submission ytvos|mevis OUT.zip`
  writes them (`rvos.infer.submission`).
"""
from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from rvos.data.types import Video
from rvos.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def frame_stem(name: str) -> str:
    """File stem of a frame name ("00005.jpg" -> "00005"; "00005" stays)."""
    return name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in IMAGE_SUFFIXES else name


def check_size(mask: np.ndarray, video: Video, what: str) -> np.ndarray:
    if mask.shape[:2] != (video.height, video.width):
        raise DatasetError(
            f"{what} is {mask.shape[1]}x{mask.shape[0]} (WxH), expected {video.width}x{video.height}, "
            f"the size of video {video.video_id!r}"
        )
    return mask


@lru_cache(maxsize=16)
def _decode_png(path: str, stamp: tuple) -> np.ndarray:
    """Values of a PNG, cached by (path, mtime, size): the objects of a frame share one label PNG."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DatasetError(f"missing prediction PNG: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"unreadable prediction PNG: {path} ({e})") from None
    if arr.ndim == 3:  # RGB(A): any colour channel set is foreground
        arr = arr[..., :3].any(axis=-1).astype(np.uint8)
    arr.setflags(write=False)
    return arr


def read_label_png(path: Path, video: Video) -> np.ndarray:
    """[H, W] values of a prediction PNG (palette index or grey level; RGB: 1 where any channel is set),
    checked against the video's size."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DatasetError(f"missing prediction PNG: {path}") from None
    return check_size(_decode_png(str(path), (st.st_mtime_ns, st.st_size)), video, f"prediction PNG {path}")


class Predictions:
    """Base class. `level` is "object" (masks per object id) or "expression" (masks per expression id)."""

    level = "expression"

    def mask(self, video: Video, unit, frame_index: int) -> np.ndarray:  # bool [H, W]
        raise NotImplementedError

    def score(self, video_id: str, exp_id: str) -> float:
        return 1.0

    def present(self, video_id: str, exp_id: str) -> Optional[bool]:
        return None

    def spans(self, video_id: str, exp_id: str) -> Optional[list[tuple[int, int]]]:
        return None


def _no_target_error(video: Video, unit) -> DatasetError:
    return DatasetError(
        f"object-level predictions (one label PNG per frame) cannot express expression {unit.key!r} of video "
        f"{video.video_id!r}, which refers to no object; give expression-level predictions (PRED/<video>/<exp_id>/)"
    )


class PaletteFolderPredictions(Predictions):
    """`root/<video>/<frame>.png` label PNGs, value = object id (DAVIS style)."""

    level = "object"

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def mask(self, video: Video, unit, frame_index: int) -> np.ndarray:
        if not unit.obj_ids:
            raise _no_target_error(video, unit)
        path = self.root / video.video_id / f"{frame_stem(video.frame_names[frame_index])}.png"
        labels = read_label_png(path, video)
        if len(unit.obj_ids) == 1:
            return labels == unit.obj_ids[0]
        return np.isin(labels, unit.obj_ids)


class ExpressionFolderPredictions(Predictions):
    """`root/<video>/<exp_id>/<frame>.png` binary PNGs (Ref-YouTube-VOS submission layout)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def mask(self, video: Video, unit, frame_index: int) -> np.ndarray:
        path = self.root / video.video_id / str(unit.key) / f"{frame_stem(video.frame_names[frame_index])}.png"
        return read_label_png(path, video) > 0


MaskSource = Union[Mapping, Callable[[str, object, int], np.ndarray]]


class MemoryPredictions(Predictions):
    """In-memory predictions: `masks[(video_id, key, frame_index)]` (a Mapping, possibly lazy) or
    `masks(video_id, key, frame_index)` (a callable), key = exp_id (level "expression") or obj_id ("object").
    Optional dicts keyed (video_id, exp_id): scores, presence, spans."""

    def __init__(self, masks: MaskSource, level: str = "expression", scores: Optional[Mapping] = None,
                 presence: Optional[Mapping] = None, spans: Optional[Mapping] = None):
        if level not in ("expression", "object"):
            raise ValueError(f"level must be 'expression' or 'object', got {level!r}")
        self.masks, self.level = masks, level
        self.scores, self.presence, self.span_map = scores or {}, presence or {}, spans or {}

    def _get(self, video: Video, key, frame_index: int) -> np.ndarray:
        k = (video.video_id, key, frame_index)
        try:
            m = self.masks(*k) if callable(self.masks) else self.masks[k]
        except KeyError:
            raise DatasetError(f"no predicted mask for video {k[0]!r}, {self.level} {key!r}, frame {frame_index}") from None
        return check_size(np.asarray(m, dtype=bool), video, f"predicted mask {k}")

    def mask(self, video: Video, unit, frame_index: int) -> np.ndarray:
        if self.level == "expression":
            if self.presence.get((video.video_id, unit.key)) is False:
                return np.zeros((video.height, video.width), bool)
            return self._get(video, unit.key, frame_index)
        if not unit.obj_ids:
            raise _no_target_error(video, unit)
        out = self._get(video, unit.obj_ids[0], frame_index)
        for o in unit.obj_ids[1:]:
            out = out | self._get(video, o, frame_index)
        return out

    def score(self, video_id: str, exp_id: str) -> float:
        return float(self.scores.get((video_id, exp_id), 1.0))

    def present(self, video_id: str, exp_id: str) -> Optional[bool]:
        return self.presence.get((video_id, exp_id))

    def spans(self, video_id: str, exp_id: str) -> Optional[list[tuple[int, int]]]:
        return self.span_map.get((video_id, exp_id))


class RLEJsonPredictions(Predictions):
    """The RLE JSON format of this module's docstring."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DatasetError(f"missing prediction JSON: {self.path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"malformed prediction JSON {self.path}: {e}") from None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise DatasetError(f"prediction JSON {self.path} must map video id -> expression id -> entry")
        self.entries = {(vid, str(eid)): (e if "masks" in e else {"masks": e}) for vid, exps in data.items()
                        for eid, e in exps.items()}

    def _entry(self, video_id: str, exp_id: str) -> dict:
        try:
            return self.entries[(video_id, str(exp_id))]
        except KeyError:
            raise DatasetError(f"{self.path} has no prediction for video {video_id!r}, expression {exp_id!r}") from None

    def mask(self, video: Video, unit, frame_index: int) -> np.ndarray:
        entry = self._entry(video.video_id, unit.key)
        if entry.get("present") is False:
            return np.zeros((video.height, video.width), bool)
        masks, name = entry["masks"], frame_stem(video.frame_names[frame_index])
        key = name if name in masks else str(frame_index)
        if key not in masks:
            raise DatasetError(f"{self.path}: video {video.video_id!r}, expression {unit.key!r} has no mask for frame {name!r}")
        rle = masks[key]
        if rle is None:
            return np.zeros((video.height, video.width), bool)
        try:
            h, w = (int(x) for x in rle["size"])
            counts = rle["counts"]
            obj = mask_utils.frPyObjects(rle, h, w) if isinstance(counts, list) else \
                {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
            m = mask_utils.decode(obj).astype(bool)
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{self.path}: frame {name!r} of {video.video_id!r}/{unit.key!r} is not a COCO RLE ({e})") from None
        return check_size(m, video, f"{self.path}: mask of {video.video_id}/{unit.key}/{name}")

    def score(self, video_id: str, exp_id: str) -> float:
        return float(self.entries.get((video_id, str(exp_id)), {}).get("score", 1.0))

    def present(self, video_id: str, exp_id: str) -> Optional[bool]:
        return self.entries.get((video_id, str(exp_id)), {}).get("present")

    def spans(self, video_id: str, exp_id: str) -> Optional[list[tuple[int, int]]]:
        raw = self.entries.get((video_id, str(exp_id)), {}).get("spans")
        return None if raw is None else [(int(s), int(e)) for s, e in raw]


class ZipPredictions(Predictions):
    """A submission zip, `[<folder>/]<video>/<exp_id>/<frame>.png` (see the module docstring); PNGs are read
    from the zip when asked for (from several scoring threads: reads are serialised, decoding is not)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.zf = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise DatasetError(f"missing prediction zip: {self.path}") from None
        except (zipfile.BadZipFile, OSError) as e:
            raise DatasetError(f"not a readable zip file: {self.path} ({e})") from None
        self.members: dict[tuple[str, str, str], str] = {}
        prefixes = set()
        for name in self.zf.namelist():
            parts = name.split("/")
            if not name.lower().endswith(".png") or parts[0] == "__MACOSX" or parts[-1].startswith("."):
                continue
            if len(parts) < 3:
                raise DatasetError(f"{self.path}: {name} is not <video>/<exp_id>/<frame>.png (a submission zip holds "
                                   "one folder per expression inside one folder per video)")
            prefixes.add("/".join(parts[:-3]))
            self.members[(parts[-3], parts[-2], frame_stem(parts[-1]))] = name
        if not self.members:
            raise DatasetError(f"no predictions in {self.path}: expected [Annotations/]<video>/<exp_id>/<frame>.png")
        if len(prefixes) > 1:
            raise DatasetError(f"{self.path} mixes PNGs under different folders ({', '.join(sorted(prefixes))}): "
                               "expected one layout, [<folder>/]<video>/<exp_id>/<frame>.png")
        self.prefix = prefixes.pop()
        self.expressions = {(v, e) for v, e, _ in self.members}
        self._lock = threading.Lock()

    def mask(self, video: Video, unit, frame_index: int) -> np.ndarray:
        stem = frame_stem(video.frame_names[frame_index])
        name = self.members.get((video.video_id, str(unit.key), stem))
        if name is None:
            where = "/".join(p for p in (self.prefix, video.video_id, str(unit.key), stem + ".png") if p)
            raise DatasetError(f"{self.path} has no {where}")
        with self._lock:
            data = self.zf.read(name)
        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DatasetError(f"unreadable PNG {name} in {self.path} ({e})") from None
        if arr.ndim == 3:
            arr = arr[..., :3].any(axis=-1)
        return check_size(arr > 0, video, f"{name} in {self.path}")


def open_predictions(path: Path | str) -> Predictions:
    """A prediction source from a path: `*.json` -> RLE JSON; `*.zip` -> a submission zip; a folder -> object
    level when its video folders hold PNGs, expression level when they hold folders."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return RLEJsonPredictions(path)
    if path.suffix.lower() == ".zip":
        return ZipPredictions(path)
    if not path.is_dir():
        raise DatasetError(f"predictions not found: {path} (expected a folder of PNGs, an RLE .json or a submission .zip)")
    for video_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        if any(video_dir.glob("*.png")):
            return PaletteFolderPredictions(path)
        if any(p.is_dir() for p in video_dir.iterdir()):
            return ExpressionFolderPredictions(path)
    raise DatasetError(f"no predictions in {path}: expected PRED/<video>/<frame>.png or PRED/<video>/<exp_id>/<frame>.png")
