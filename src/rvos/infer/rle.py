"""COCO run-length encoding of binary masks (pycocotools), with counts as str so the result is JSON-ready."""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from rvos.errors import DatasetError


def encode_rle(mask: np.ndarray) -> dict:
    """bool [H, W] -> {"size": [H, W], "counts": str} (COCO compressed RLE)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """{"size": [H, W], "counts": str | bytes} -> bool [H, W]."""
    try:
        counts = rle["counts"]
        obj = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(obj).astype(bool)
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"not a COCO RLE mask (expected {{'size': [H, W], 'counts': str}}): {e}") from None
