"""Sample videos for the web page: videos of the synthetic benchmark, regenerated from its seed (test split,
so the demo model has not trained on them), written as WebM so the browser previews them, each with two of its
own referring sentences."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rvos.errors import RVOSError


@dataclass(frozen=True)
class Sample:
    path: Path
    sentences: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.sentences)


def write_webm(frames: np.ndarray, path: Path, fps: float) -> Path:
    """uint8 [T, H, W, 3] RGB -> a VP8 WebM, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.webm")
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"VP80"), float(fps), (w, h))
    if not writer.isOpened():
        raise RVOSError(f"cannot open a VP8 WebM writer for {path} (OpenCV without libvpx?)")
    try:
        for f in frames:
            writer.write(np.ascontiguousarray(f[:, :, ::-1]))  # RGB -> BGR
    finally:
        writer.release()
    tmp.replace(path)
    return path


def make_samples(folder: Path | str, count: int = 2, seed: int = 0) -> list[Sample]:
    """`count` synthetic test videos (`rvos data synth --seed S` test_0000, test_0001 ...) and, for each, its
    first two single-object sentences."""
    from rvos.data.synth import SynthConfig, generate_video
    from rvos.data.synth.config import SPLITS

    cfg, folder, out = SynthConfig(seed=seed), Path(folder), []
    for index in range(count):
        rng = np.random.default_rng([cfg.seed, SPLITS.index("test"), index])  # as the benchmark writer seeds it
        frames, _, _, expressions = generate_video(rng, cfg)
        single = [e["exp"] for e in expressions if isinstance(e["obj_id"], str)]
        path = write_webm(frames, folder / f"synthetic_test_{index:04d}.webm", cfg.fps)
        out.append(Sample(path, single[:2]))
    return out
