"""What the web page does with a request, without gradio: read the upload, segment it with the streaming
Predictor, write the overlay video, the RLE JSON and a zip of the palette PNGs, and sum up each sentence.

Errors a user can fix (not a video, no sentence, a video over the frame limit) are `RVOSError`s whose message
the page shows as is. Each request writes to its own folder under `<workdir>/runs/`; only the newest
`keep_runs` folders are kept."""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from rvos.data.frames import IMAGE_EXTS, VIDEO_EXTS, open_video
from rvos.data.types import FrameSource, Video
from rvos.errors import ConfigError, DatasetError
from rvos.infer.predictor import Predictor, SegmentResult, check_sentences
from rvos.infer.writers import JsonSink, OverlayVideoSink, PaletteSink, zip_pngs

# progress(done, total, what): frames read so far in the current pass
Progress = Callable[[int, int, str], None]
ACCEPTED = ", ".join(VIDEO_EXTS + (".gif",))


def parse_sentences(text: Optional[str]) -> list[str]:
    """One sentence a line; blank lines are skipped. ConfigError when no sentence is left."""
    lines = [line.strip() for line in (text or "").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise ConfigError("type at least one referring sentence (one a line), e.g. \"the red person\"")
    return check_sentences(lines)


@dataclass
class DemoOutput:
    """The files one request wrote and a summary row per sentence."""

    folder: Path
    overlay: Path  # WebM (VP8): what the page plays
    json: Path  # per-frame area, score and RLE masks of every sentence
    zip: Path  # masks/<sentence>/<frame>.png palette PNGs
    rows: list[list]  # per sentence: sentence, frames with the object, present, presence p, when
    frames: int
    seconds: float
    results: list[SegmentResult] = field(default_factory=list)

    @property
    def message(self) -> str:
        n = len(self.rows)
        return (f"Segmented {self.frames} frames with {n} sentence{'s' if n != 1 else ''} "
                f"in {self.seconds:.1f} s.")


HEADERS = ["sentence", "frames with the object", "present", "presence p", "when (frames)"]


def summary_row(r: SegmentResult) -> list:
    seen = sum(a > 0 for a in r.areas)
    if r.present is None:
        present, p = "no presence head", ""
    else:
        present = "yes" if r.present else ("no (masks emptied)" if r.gated else "no (masks kept)")
        p = f"{r.presence_score:.2f}"
    spans = r.spans
    when = "" if spans is None else (" ".join(f"{s}-{e - 1}" for s, e in spans) or "never")
    return [r.sentence, f"{seen}/{len(r.areas)}", present, p, when]


class _Reporting(FrameSource):
    """A frame source that reports each read: the predictor reads every frame once per pass, in order."""

    def __init__(self, inner: FrameSource, progress: Progress):
        self.inner, self.progress, self.names = inner, progress, inner.names
        self.passes, self.last = 0, -1

    def __len__(self) -> int:
        return len(self.inner)

    def read(self, index: int) -> np.ndarray:
        if index <= self.last or self.last < 0:
            self.passes += 1
        self.last = index
        what = "segmenting" if self.passes == 1 else "writing the overlay and the masks"
        self.progress(index, len(self), what)
        return self.inner.read(index)


class DemoService:
    """Segments uploads with one model. `gate`: the Predictor's presence gate (None = when the model has a
    presence head). `max_frames`: refuse longer videos (None = any length; memory stays flat either way)."""

    def __init__(self, model, *, device: str = "cpu", window: int = 8, size: Optional[int] = None,
                 threshold: float = 0.5, gate: Optional[bool] = None, max_frames: Optional[int] = None,
                 workdir: Optional[Path | str] = None, keep_runs: int = 16):
        self.predictor = Predictor(model, device=device, window=window, size=size, threshold=threshold, gate=gate)
        if max_frames is not None and max_frames < 1:
            raise ConfigError(f"max_frames must be >= 1, got {max_frames}")
        if keep_runs < 1:
            raise ConfigError(f"keep_runs must be >= 1, got {keep_runs}")
        self.max_frames, self.keep_runs = max_frames, keep_runs
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="rvos-app-"))
        self.runs = self.workdir / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one request at a time uses the model

    def open_upload(self, path: Optional[str | Path]) -> Video:
        """The uploaded file as a Video, or a DatasetError that says what is wrong with it."""
        if not path:
            raise DatasetError(f"upload a video first ({ACCEPTED}), or pick one of the samples")
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in VIDEO_EXTS + (".gif",):
            kind = "an image" if suffix in IMAGE_EXTS else f"a {suffix or 'file without extension'} file"
            raise DatasetError(f"'{path.name}' is {kind}, not a video: upload one of {ACCEPTED}")
        try:
            video = open_video(path)
        except DatasetError as e:
            raise DatasetError(f"'{path.name}' cannot be read as a video ({_short(e, path)}): upload one of "
                               f"{ACCEPTED}") from None
        if len(video) == 0:
            raise DatasetError(f"'{path.name}' has no frames")
        if self.max_frames is not None and len(video) > self.max_frames:
            raise DatasetError(f"'{path.name}' has {len(video)} frames; this demo takes at most {self.max_frames} "
                               "(start it with a larger --max-frames)")
        return video

    def run(self, path: Optional[str | Path], text: Optional[str], progress: Optional[Progress] = None) -> DemoOutput:
        sentences = parse_sentences(text)
        video = self.open_upload(path)
        if progress is not None:
            video = Video(video.video_id, _Reporting(video.source, progress), video.height, video.width, video.fps)
        with self._lock:
            self._prune()
            folder = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%d-%H%M%S')}-", dir=self.runs))
            start = time.perf_counter()
            sinks = [JsonSink(folder / "masks.json"), PaletteSink(folder / "png"),
                     OverlayVideoSink(folder / "overlay.webm", fourcc="VP80")]
            try:
                results = self.predictor.segment(video, sentences, sinks=sinks)
                zip_path = zip_pngs(folder / "png", folder / "masks.zip", prefix="masks")
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            shutil.rmtree(folder / "png", ignore_errors=True)
            seconds = time.perf_counter() - start
        return DemoOutput(folder, folder / "overlay.webm", folder / "masks.json", zip_path,
                          [summary_row(r) for r in results], len(video), seconds, results)

    def _prune(self) -> None:
        """Remove all but the newest keep_runs - 1 request folders (the next request makes one more)."""
        runs = sorted((p for p in self.runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for old in runs[: max(0, len(runs) - (self.keep_runs - 1))]:
            shutil.rmtree(old, ignore_errors=True)


def _short(error: Exception, path: Path) -> str:
    """An error message without the (temporary, meaningless to the user) folder of the upload."""
    return str(error).replace(str(path), path.name).replace(": " + path.name, "")
