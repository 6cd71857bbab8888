"""Feature cache for frozen visual backbones: encode every frame once and train the rest of the model on it.

Every frame of every training video is resized to the fixed training size, encoded by `model.encode_frames`
(C2..C5) as is and horizontally flipped, and stored as fp16, in memory or as .npy memmaps under the run folder
(`features/level{l}.npy` + `features/index.json`), keyed by (video id, frame index, flipped). `ClipDataset` then
reads `Batch.features` from it instead of running the backbone: with the cache, random resize/crop and
photometric jitter are off (the cache holds exactly two views of each frame), flip stays on. This is what makes
CPU training practical. Only valid while the backbone's weights do not change (frozen backbone).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from rvos.data import transforms as tf
from rvos.data.types import VideoRecord
from rvos.train.checkpoint import atomic_write_bytes


def cache_frame(rec: VideoRecord, index: int, size: tuple[int, int], flipped: bool) -> torch.Tensor:
    """float [3, H, W] in [0, 1]: exactly the pixels ClipDataset produces for this frame without jitter."""
    frame = rec.video.frame(index)[None]  # [1, H0, W0, 3]
    h0, w0 = frame.shape[1:3]
    clip = tf.Clip(frames=frame, masks=np.zeros((1, h0, w0), bool), boxes=np.full((1, 4), np.nan, np.float32),
                   kinds=np.zeros(1, np.int64), text="")
    clip = tf.resize(clip, *size)
    if flipped:
        clip = tf.hflip(clip)
    return torch.from_numpy(clip.frames[0].copy()).permute(2, 0, 1).float().div_(255.0)


class FeatureCache:
    """fp16 features per level, rows addressed by (video id, frame index, flipped)."""

    def __init__(self, levels: list[np.ndarray], keys: list[tuple[str, int, bool]]):
        self.levels = levels  # per level [R, C_l, H_l, W_l] fp16 (array or memmap)
        self.rows = {k: r for r, k in enumerate(keys)}
        self.mirrored = {v for v, _, f in keys if f}  # videos whose flipped view is cached

    def has_mirror(self, video_id: str) -> bool:
        return video_id in self.mirrored

    def lookup(self, video_id: str, frames: Sequence[int], flipped: bool) -> list[torch.Tensor]:
        """Per level float32 [T, C_l, H_l, W_l] for these frames of the video."""
        try:
            rows = [self.rows[(video_id, int(i), bool(flipped))] for i in frames]
        except KeyError as e:
            raise KeyError(f"feature cache has no entry {e.args[0]} (was it built from other records?)") from None
        return [torch.from_numpy(np.asarray(lvl[rows], dtype=np.float32)) for lvl in self.levels]

    def __len__(self) -> int:
        return len(self.rows)


def _keys(records: Sequence[VideoRecord], mirrored: Optional[set[str]] = None) -> list[tuple[str, int, bool]]:
    seen, keys = set(), []
    for rec in records:
        if rec.video_id in seen:
            continue
        seen.add(rec.video_id)
        views = (False, True) if mirrored is None or rec.video_id in mirrored else (False,)
        keys += [(rec.video_id, i, f) for i in range(len(rec.video)) for f in views]
    return keys


@torch.no_grad()
def _encode(model, records: Sequence[VideoRecord], keys, size, device, chunk: int, alloc, progress: bool = False,
            threads: int = 1) -> list[np.ndarray]:
    """Encode `keys` in chunks; with `threads` > 1 (CPU, one intra-op thread each) chunks run side by side."""
    by_id = {r.video_id: r for r in records}
    starts = list(range(0, len(keys), chunk))
    levels: list[np.ndarray] = []

    def run(s: int) -> None:
        part = keys[s:s + chunk]
        frames = torch.stack([cache_frame(by_id[v], i, size, f) for v, i, f in part]).to(device)  # [N, 3, H, W]
        feats = model.encode_frames(frames)  # per level [N, C_l, H_l, W_l]
        if not levels:  # the first chunk (run alone) gives the shapes
            levels.extend(alloc(l, (len(keys), *f.shape[1:])) for l, f in enumerate(feats))
        for lvl, f in zip(levels, feats):
            lvl[s:s + len(part)] = f.float().cpu().numpy().astype(np.float16)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(starts), desc="feature cache", unit="batch", dynamic_ncols=True)
    for s in starts[:1]:
        run(s)
        bar is not None and bar.update()
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:  # torch releases the GIL inside its kernels
            for _ in pool.map(run, starts[1:]):
                bar is not None and bar.update()
    else:
        for s in starts[1:]:
            run(s)
            bar is not None and bar.update()
    if bar is not None:
        bar.close()
    return levels


# Frames up to this many pixels are encoded with one intra-op thread on CPU: at 192x320 EfficientNet-Lite0 took
# 45 ms a frame with 1 thread and 61 ms with 2 on the 2-core machine (the ops are too small to split).
SMALL_FRAME = 256 * 448


def build_feature_cache(model, records: Sequence[VideoRecord], size: tuple[int, int], device: torch.device | str = "cpu",
                        folder: Optional[Path] = None, chunk: Optional[int] = None, progress: bool = False,
                        mirrored: Optional[set[str]] = None) -> FeatureCache:
    """Encode every frame of `records` (original and flipped) with `model.encode_frames` in eval mode.
    `mirrored`: the video ids whose flipped view is encoded too (None = every video); `ClipDataset` flips only
    those. With `folder`, features are .npy memmaps there, reused when the index matches and the first frame
    re-encodes to the stored features (so a resumed run or a second rank does not recompute them)."""
    keys = _keys(records, mirrored)
    cpu = torch.device(device).type == "cpu"
    if chunk is None:  # EfficientNet-Lite0 at 192x320 on the 2-core CPU: 35 ms a frame one at a time, 67 in batches of 8
        chunk = 1 if cpu else 32
    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    workers = 1
    if cpu and size[0] * size[1] <= SMALL_FRAME:
        workers = max(1, threads)  # small frames: one intra-op thread per frame, frames side by side
        torch.set_num_threads(1)
    try:
        if folder is None:
            levels = _encode(model, records, keys, size, device, chunk, lambda l, shape: np.zeros(shape, np.float16),
                             progress, workers)
            return FeatureCache(levels, keys)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        index_file = folder / "index.json"
        meta = {"size": list(size), "keys": [[v, i, f] for v, i, f in keys]}
        if index_file.is_file():
            stored = json.loads(index_file.read_text())
            if stored.get("size") == meta["size"] and stored.get("keys") == meta["keys"]:
                levels = [np.load(folder / f"level{l}.npy", mmap_mode="r") for l in range(stored["levels"])]
                probe = _encode(model, records, keys[:1], size, device, 1, lambda l, shape: np.zeros(shape, np.float16))
                if all(np.array_equal(p[0], lvl[0]) for p, lvl in zip(probe, levels)):
                    return FeatureCache(levels, keys)
            index_file.unlink()
        alloc = lambda l, shape: np.lib.format.open_memmap(folder / f"level{l}.npy", mode="w+", dtype=np.float16, shape=shape)  # noqa: E731
        levels = _encode(model, records, keys, size, device, chunk, alloc, progress, workers)
        for lvl in levels:
            lvl.flush()
        meta["levels"] = len(levels)
        atomic_write_bytes(index_file, json.dumps(meta).encode())  # written last: marks the cache complete
        return FeatureCache([np.load(folder / f"level{l}.npy", mmap_mode="r") for l in range(len(levels))], keys)
    finally:
        model.train(was_training)
        torch.set_num_threads(threads)
