"""Frame sources: lazily read frames from a folder of images, a video file or a GIF, and `open_video` for a
user's own video. Sizes come from file headers (PIL opens the header only; cv2 reports the stream size), so
building a `Video` never decodes every frame."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from rvos.data.types import FrameSource, Video
from rvos.errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".m4v")


def natural_key(name: str) -> list:
    """Sort key where digit runs compare as numbers: frame2 < frame10."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", str(name))]


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image from its header; DatasetError when it is missing or not an image."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except FileNotFoundError:
        raise DatasetError(f"missing image: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetError(f"not a readable image: {path} ({e})") from None
    return h, w


def read_rgb(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB pixels of an image file; DatasetError naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"missing frame: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"corrupt or unreadable frame image: {path} ({e})") from None


class ArrayFrames(FrameSource):
    """Frames already in memory (a uint8 [T, H, W, 3] array or a list of [H, W, 3] RGB arrays): decoded elsewhere,
    generated, or test data."""

    def __init__(self, frames, names: Optional[Sequence[str]] = None):
        self.frames = frames
        self.names = list(names) if names is not None else [f"{i:05d}" for i in range(len(frames))]

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, index: int) -> np.ndarray:  # uint8 [H, W, 3]
        return self.frames[index]


class FrameFolder(FrameSource):
    """Frames stored as image files (jpg/png), one file a frame, in the order given."""

    def __init__(self, paths: Sequence[Path | str]):
        self.paths = [Path(p) for p in paths]
        self.names = [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:  # uint8 [H, W, 3]
        return read_rgb(self.paths[index])

    def size(self) -> tuple[int, int]:
        if not self.paths:
            raise DatasetError("a frame folder with no frames has no size")
        return image_size(self.paths[0])


class VideoFileFrames(FrameSource):
    """A video file (mp4/avi/webm...) decoded lazily with cv2.VideoCapture. Reading frames in order decodes
    each once; a jump seeks. The capture is reopened after unpickling (DataLoader workers)."""

    def __init__(self, path: Path | str):
        import cv2

        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"missing video file: {self.path}")
        cap = self._open()
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 24.0
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        ok, first = cap.read()
        if not ok or n <= 0 or first is None:
            cap.release()
            raise DatasetError(f"video file has no decodable frames: {self.path}")
        self.height, self.width = first.shape[:2]
        cap.release()  # reopened on the first read: a dataset of thousands of clips holds no open decoders
        self._cap, self._pos = None, 0
        self.names = [f"{i:05d}" for i in range(n)]

    def _open(self):
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise DatasetError(f"not a readable video file (corrupt or unsupported codec): {self.path}")
        return cap

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> np.ndarray:  # uint8 [H, W, 3]
        import cv2

        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range for {self.path} ({len(self)} frames)")
        if self._cap is None:
            self._cap, self._pos = self._open(), 0
        if index != self._pos:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._pos = -1
            raise DatasetError(f"cannot decode frame {index} of video {self.path}")
        self._pos = index + 1
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cap"], state["_pos"] = None, 0
        return state


class GifFrames(FrameSource):
    """An animated GIF read with PIL, a frame at a time."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            with Image.open(self.path) as im:
                n = getattr(im, "n_frames", 1)
                self.width, self.height = im.size
                duration = im.info.get("duration") or 0
        except FileNotFoundError:
            raise DatasetError(f"missing GIF file: {self.path}") from None
        except (UnidentifiedImageError, OSError) as e:
            raise DatasetError(f"not a readable GIF: {self.path} ({e})") from None
        self.fps = 1000.0 / duration if duration else 10.0
        self.names = [f"{i:05d}" for i in range(n)]

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> np.ndarray:  # uint8 [H, W, 3]
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range for {self.path} ({len(self)} frames)")
        with Image.open(self.path) as im:
            im.seek(index)
            return np.asarray(im.convert("RGB"))


def open_video(path: Path | str, fps: float | None = None) -> Video:
    """A user's video: a video file, a GIF or a folder of frames (sorted naturally). `fps` overrides the rate
    (a folder of frames has none; 24 is assumed)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"missing video: {path} (expected a video file, a GIF or a folder of frames)")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=lambda p: natural_key(p.name))
        if not files:
            raise DatasetError(f"frame folder has no images ({', '.join(IMAGE_EXTS)}): {path}")
        src = FrameFolder(files)
        h, w = src.size()
        return Video(path.name, src, h, w, fps or 24.0)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        src = GifFrames(path)
    elif suffix in VIDEO_EXTS:
        src = VideoFileFrames(path)
    elif suffix in IMAGE_EXTS:
        src = FrameFolder([path])
        h, w = src.size()
        return Video(path.stem, src, h, w, fps or 24.0)
    else:
        raise DatasetError(f"unsupported video file type {suffix!r}: {path} (expected {', '.join(VIDEO_EXTS)}, .gif or a folder)")
    return Video(path.stem, src, src.height, src.width, fps or src.fps)
