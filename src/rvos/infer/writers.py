"""Sinks that write the predictor's masks as they stream: palette PNGs, an overlay MP4, a JSON of per-frame
area/score/RLE; and a zip of PNGs in the Ref-YouTube-VOS submission layout. Every file is written under a
temporary name in its folder and renamed when complete, so a crash never leaves a truncated output.

PNG layout: one folder per sentence, `OUT/<folder>/<frame name>.png`, palette mode with the DAVIS palette,
value 1 = the referred object, 0 = background. One binary PNG per sentence (rather than one label PNG with value
k for the k-th sentence) because sentences may refer to overlapping objects, and because it is the
Ref-YouTube-VOS submission layout (`Annotations/<video>/<exp_id>/<frame>.png`)."""
from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
from PIL import Image

from rvos.data.types import Video
from rvos.errors import RVOSError
from rvos.infer.predictor import FrameSink, SegmentResult
from rvos.infer.render import davis_palette, draw_timeline, render_frame
from rvos.infer.rle import encode_rle

_PALETTE = davis_palette()


def slug(text: str, max_len: int = 48) -> str:
    """Folder-safe name of a sentence: lower case words joined by '-'."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:max_len].strip("-")
    return s or "sentence"


def sentence_dirs(sentences: Sequence[str]) -> list[str]:
    """One distinct folder name per sentence (a repeated slug gets -2, -3 ...)."""
    names, seen = [], {}
    for s in sentences:
        base = slug(s)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def _tmp_name(path: Path) -> Path:
    """A temporary name beside `path` with the same suffix (cv2 and PIL pick the format from it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def write_palette_png(path: Path, mask: np.ndarray) -> None:
    """bool/uint8 label array [H, W] -> palette PNG (DAVIS palette), atomically."""
    im = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    im.putpalette(_PALETTE)
    tmp = _tmp_name(path)
    im.save(tmp, format="PNG")
    os.replace(tmp, path)


def _publish(tmp: str | Path, path: Path) -> None:
    """Rename a finished temporary file onto `path` with ordinary permissions (mkstemp makes it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    """JSON to `path` via a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PaletteSink(FrameSink):
    """`root/<folder>/<frame name>.png` per sentence; folders from `dirs` or slugs of the sentences."""

    def __init__(self, root: Path | str, dirs: Optional[Sequence[str]] = None):
        self.root, self.dirs = Path(root), list(dirs) if dirs is not None else None

    def open(self, video: Video, sentences: list[str]) -> None:
        if self.dirs is None:
            self.dirs = sentence_dirs(sentences)
        if len(self.dirs) != len(sentences):
            raise ValueError(f"{len(self.dirs)} folders for {len(sentences)} sentences")
        self.names = video.frame_names
        for d in self.dirs:
            (self.root / d).mkdir(parents=True, exist_ok=True)

    def write(self, index: int, frame, masks: list[np.ndarray]) -> None:
        for d, m in zip(self.dirs, masks):
            write_palette_png(self.root / d / f"{self.names[index]}.png", m)

    def close(self, results: list[SegmentResult]) -> None:
        for d, r in zip(self.dirs, results):
            r.paths["png"] = self.root / d


class OverlayVideoSink(FrameSink):
    """MP4 (mp4v) of the masks tinted over the video with the sentences written on it. MPEG-4 needs even
    sizes: an odd height/width gets one black row/column at the bottom/right rather than losing a pixel.
    `fourcc` picks another codec for the container of `path`: "VP80" with a .webm path gives a video that
    browsers play (the web demo), which mp4v is not.
    For a model with a moment head (per-frame relevance), each sentence's caption ends in "(referred)" on the
    frames of its predicted spans, and a bar per sentence along the bottom shows the spans (its tint where the
    sentence holds, grey where not, dark for frames not yet decoded) with a tick at the current frame."""

    needs_frames = True

    def __init__(self, path: Path | str, fps: Optional[float] = None, alpha: float = 0.5, fourcc: str = "mp4v"):
        self.path, self.fps, self.alpha, self.writer = Path(path), fps, alpha, None
        self.fourcc = fourcc
        self.results: list[SegmentResult] = []

    def attach(self, results: list[SegmentResult]) -> None:
        self.results = results

    def open(self, video: Video, sentences: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp, self.sentences, self.n_frames = _tmp_name(self.path), sentences, len(video)
        self.size = (video.width, video.height)
        self.even = (video.width + video.width % 2, video.height + video.height % 2)
        fps = float(self.fps or video.fps or 24.0)
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*self.fourcc), fps, self.even)
        if not self.writer.isOpened():
            raise RVOSError(f"cannot open a {self.fourcc} video writer for {self.path} (OpenCV without that encoder?)")

    def write(self, index: int, frame: np.ndarray, masks: list[np.ndarray]) -> None:
        if frame.shape[:2] != (self.size[1], self.size[0]):
            frame = cv2.resize(frame, self.size)
        relevance = [r.relevance for r in self.results] or [None] * len(masks)
        captions = [s + (" (referred)" if rel is not None and index < len(rel) and rel[index] > 0.5 else "")
                    for s, rel in zip(self.sentences, relevance)]
        out = draw_timeline(render_frame(frame, masks, captions, self.alpha), relevance, index, self.n_frames)
        if self.even != self.size:
            out = cv2.copyMakeBorder(out, 0, self.even[1] - self.size[1], 0, self.even[0] - self.size[0],
                                     cv2.BORDER_CONSTANT, value=(0, 0, 0))
        self.writer.write(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))

    def close(self, results: list[SegmentResult]) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)
        for r in results:
            r.paths["video"] = self.path

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            Path(self.tmp).unlink(missing_ok=True)


class JsonSink(FrameSink):
    """One JSON: video info and, per sentence, the chosen query, presence, per-frame area, score and RLE.
    RLEs stream to a hidden temporary file per sentence as they come (a noisy mask's RLE can be tens of KB),
    and are copied into the JSON at close, so memory does not grow with the video's length."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.parts: list = []

    def open(self, video: Video, sentences: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.video = video
        self.parts = [tempfile.TemporaryFile("w+", dir=self.path.parent, prefix=f".{self.path.name}.") for _ in sentences]

    def write(self, index: int, frame, masks: list[np.ndarray]) -> None:
        for part, m in zip(self.parts, masks):
            part.write(json.dumps(encode_rle(m)) + "\n")

    def close(self, results: list[SegmentResult]) -> None:
        v = self.video
        head = {"video": v.video_id, "height": v.height, "width": v.width, "fps": v.fps}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(head)[:-1] + ', "sentences": [')
                for k, (r, part) in enumerate(zip(results, self.parts)):
                    info = {"sentence": r.sentence, "query": r.query, "present": r.present,
                            "presence_score": r.presence_score, "gated": r.gated, "spans": r.spans}
                    f.write(("," if k else "") + json.dumps(info)[:-1] + ', "frames": [')
                    part.seek(0)
                    for i, (name, area, score, line) in enumerate(zip(r.frame_names, r.areas, r.scores, part)):
                        row = {"index": i, "name": name, "area": area, "score": score}
                        if r.relevance is not None:
                            row["relevance"] = r.relevance[i]
                        frame = json.dumps(row)
                        f.write(("," if i else "") + frame[:-1] + ', "rle": ' + line.rstrip("\n") + "}")
                    f.write("]}")
                f.write("]}")
            _publish(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            self.abort()
        for r in results:
            r.paths["json"] = self.path

    def abort(self) -> None:
        for part in self.parts:
            part.close()  # TemporaryFile: removed on close
        self.parts = []


def zip_pngs(root: Path | str, zip_path: Path | str, prefix: str = "Annotations") -> Path:
    """Zip every PNG under `root` as `<prefix>/<path relative to root>` (Ref-YouTube-VOS submission when root
    holds `<video>/<exp_id>/<frame>.png`), atomically. Returns the zip path."""
    root, zip_path = Path(root), Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(zip_path)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for png in sorted(root.rglob("*.png")):
                if not png.name.startswith("."):
                    zf.write(png, (Path(prefix) / png.relative_to(root)).as_posix())
        os.replace(tmp, zip_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return zip_path
