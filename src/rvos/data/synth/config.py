"""Configuration and vocabulary of the synthetic RVOS benchmark.

The vocabulary (categories, colours, sizes, textures, motions) is shared by the scene sampler, the renderer and
the expression generator, so that every word an expression uses is a fact the generator drew.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from rvos.errors import ConfigError

VERSION = "1.0"
SPLITS = ("train", "valid", "test")

CATEGORIES = ("circle", "square", "triangle", "star", "ring", "cross", "car", "person")
COLOURS: dict[str, tuple[int, int, int]] = {  # RGB, saturated so that they stand out from the muted background
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (45, 85, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 205),
    "orange": (245, 135, 30),
}
SIZES = {"small": 0.06, "big": 0.10}  # object half-extent as a fraction of the frame height
TEXTURES = ("plain", "striped", "dotted")
DIRECTIONS = ("left", "right", "up", "down")
# Motion programs an object follows (see scene.py); the expression generator re-derives motion facts from the
# trajectory itself, never from this label.
MOTIONS = ("static", "constant", "stop", "start", "turn", "enter", "leave")
MOTION_WEIGHTS = (0.18, 0.30, 0.12, 0.12, 0.14, 0.07, 0.07)


@dataclass
class SynthConfig:
    """Everything that determines the generated dataset (with `seed`, output is byte-identical)."""

    seed: int = 0
    train: int = 96  # number of videos per split
    valid: int = 16
    test: int = 16
    frames: int = 24  # frames per video
    height: int = 192
    width: int = 320
    fps: int = 12
    min_objects: int = 2
    max_objects: int = 5
    distractor_prob: float = 0.55  # chance a new object copies the category of an earlier one
    max_expressions: int = 12  # positive expressions per video (absent ones come on top)
    absent_per_video: int = 2
    paraphrases: int = 3  # augmented positives per positive expression
    hard_negatives: int = 3  # hard negatives per positive expression
    noise: float = 2.0  # std of per-frame pixel noise (JPEG size grows fast with it)
    jpeg_quality: int = 90
    workers: int = 2  # processes used by `generate`

    def __post_init__(self) -> None:
        checks = [
            (min(self.train, self.valid, self.test) >= 0, "split sizes must be >= 0"),
            (self.train + self.valid + self.test > 0, "at least one video is needed"),
            (self.frames >= 8, "frames must be >= 8 (motion events happen in the middle of the video)"),
            (self.height >= 64 and self.width >= 64, "height and width must be >= 64"),
            (2 <= self.min_objects <= self.max_objects <= 8, "need 2 <= min_objects <= max_objects <= 8"),
            (self.fps > 0 and self.workers >= 1, "fps and workers must be positive"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be in 1..100"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"SynthConfig: {msg} (got {self})")

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.train, "valid": self.valid, "test": self.test}

    def to_dict(self) -> dict:
        return asdict(self)
