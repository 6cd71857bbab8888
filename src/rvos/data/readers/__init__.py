"""Dataset readers, one module per on-disk layout, and `open_dataset` that picks one.

Every reader returns `list[VideoRecord]` with lazily read frames and lazily decoded masks. Layouts:
ytvos (Ref-YouTube-VOS and the synthetic benchmark), davis (Ref-DAVIS17), mevis, a2d (A2D-Sentences),
jhmdb (JHMDB-Sentences)."""
from __future__ import annotations

import importlib
from pathlib import Path

from rvos.data.types import VideoRecord
from rvos.errors import DatasetError

LAYOUTS = ("ytvos", "davis", "mevis", "a2d", "jhmdb")
DEFAULT_SPLIT = {"ytvos": "train", "davis": "val", "mevis": "valid_u", "a2d": "test", "jhmdb": "all"}
MEVIS_SPLITS = ("train", "valid_u", "valid")


def detect_layout(root: Path | str) -> str:
    """Name of the layout of `root`, from the files present; DatasetError when none matches."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root is not a folder: {root}")
    for d in (root, root / "DAVIS"):
        if (d / "JPEGImages" / "480p").is_dir() and (d / "ImageSets").is_dir():
            return "davis"
    if any((root / s / "mask_dict.json").is_file() or (root / s / "meta_expressions.json").is_file() for s in MEVIS_SPLITS):
        return "mevis"
    if (root / "text_annotations").is_dir():
        return "a2d"
    if (root / "puppet_mask").is_dir():
        return "jhmdb"
    if (root / "meta_expressions").is_dir():
        return "ytvos"
    raise DatasetError(
        f"cannot tell the dataset layout of {root}: expected one of JPEGImages/480p + ImageSets (davis), "
        "<split>/mask_dict.json (mevis), text_annotations/ (a2d), puppet_mask/ (jhmdb), meta_expressions/ (ytvos)"
    )


def open_dataset(root: Path | str, layout: str = "auto", split: str | None = None, **kw) -> list[VideoRecord]:
    """Read the records of one split of a dataset. `layout` is one of LAYOUTS or "auto"; `split` defaults to
    the layout's evaluation split (DEFAULT_SPLIT); extra keywords go to the reader (e.g. expressions="annot2"
    for davis)."""
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; expected one of {LAYOUTS} or 'auto'")
    if not root.is_dir():
        raise DatasetError(f"dataset root is not a folder: {root}")
    module = importlib.import_module(f"rvos.data.readers.{layout}")
    reader = getattr(module, f"read_{layout}")
    return reader(root, split=split or DEFAULT_SPLIT[layout], **kw)


__all__ = ["LAYOUTS", "DEFAULT_SPLIT", "detect_layout", "open_dataset"]
