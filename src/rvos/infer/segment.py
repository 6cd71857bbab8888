"""Segment one video with several sentences and write every output: the body of `rvos segment`, reusable from
Python and by `rvos demo`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from rvos.data.types import Video
from rvos.infer.predictor import Predictor, SegmentResult
from rvos.infer.writers import JsonSink, OverlayVideoSink, PaletteSink, zip_pngs


def segment_video(model, video: Video, sentences: Sequence[str], out: Path | str, *, png: bool = True,
                  overlay: bool = True, zip_png: bool = False, fps: Optional[float] = None,
                  predictor: Optional[Predictor] = None, **predictor_kwargs) -> list[SegmentResult]:
    """Write `out/masks.json` (per-frame area, score, RLE), `out/png/<sentence>/<frame>.png` and
    `out/overlay.mp4` (and `out/masks.zip` with zip_png) for what each sentence refers to in `video`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sinks = [JsonSink(out / "masks.json")]
    if png:
        sinks.append(PaletteSink(out / "png"))
    if overlay:
        sinks.append(OverlayVideoSink(out / "overlay.mp4", fps=fps))
    predictor = predictor or Predictor(model, **predictor_kwargs)
    results = predictor.segment(video, list(sentences), sinks=sinks)
    if png and zip_png:
        path = zip_pngs(out / "png", out / "masks.zip")
        for r in results:
            r.paths["zip"] = path
    return results


def write_video_mp4(video: Video, path: Path | str, fps: Optional[float] = None) -> Path:
    """Encode the frames of `video` as an mp4 (mp4v), atomically: a demo input that any reader opens."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps or video.fps),
                             (video.width, video.height))
    try:
        for i in range(len(video)):
            writer.write(np.ascontiguousarray(video.frame(i)[:, :, ::-1]))  # RGB -> BGR
    finally:
        writer.release()
    tmp.replace(path)
    return path
