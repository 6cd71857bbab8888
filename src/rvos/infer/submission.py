"""Benchmark submission zips: the files each benchmark's evaluation server takes for a split without public
ground truth (Ref-YouTube-VOS valid, MeViS valid), written straight from the predictor's masks.

Both servers take one binary PNG per expression and frame, `<video>/<exp_id>/<frame>.png`, named by the
frame names of the split's `meta_expressions.json` (e.g. `00000.png`), 8-bit greyscale with 0 for background
and 255 for the referred object(s): what ReferFormer's `inference_ytvos.py` and MeViS's own
`lmpm/evaluation/evaluator.py` write (`Image.fromarray(mask * 255).convert('L')`), and what MeViS's
`tools/eval_mevis.py` reads back with `cv2.IMREAD_GRAYSCALE`. They differ above the video folders:

- ytvos (Ref-YouTube-VOS, CodaLab): `Annotations/<video>/<exp_id>/<frame>.png` (ReferFormer: rename the
  output folder to Annotations, `zip -r submission.zip Annotations`). The official valid meta_expressions also
  lists the 305 test videos; when `meta_expressions/test/meta_expressions.json` is there, its videos are left
  out of a valid submission, which then holds the 202 valid videos.
- mevis (MeViS, CodaLab): the video folders at the top of the zip, no folder above them (the MeViS README:
  `cd [output_dir]; zip -r ../xxx.zip *`, "directly packages 140 val video folders").

Every expression of the split is in the zip, no-target ones included (MeViS has them; the server scores an empty
mask there as right). A gated expression (presence head says absent) gets empty masks. The zip is written under
a temporary name beside OUT.zip and renamed when complete. `rvos eval OUT.zip --dataset ROOT` reads it back
(`rvos.evaluate.predictions.ZipPredictions`)."""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from rvos.data.types import Expression, TargetKind, Video, VideoRecord
from rvos.errors import ConfigError, DatasetError
from rvos.infer.predictor import FrameSink


@dataclass(frozen=True)
class SubmissionLayout:
    benchmark: str
    prefix: str  # folder inside the zip above the video folders ("" = none)
    server: str


SUBMISSIONS = {
    "ytvos": SubmissionLayout("Ref-YouTube-VOS", "Annotations", "the Ref-YouTube-VOS CodaLab competition"),
    "mevis": SubmissionLayout("MeViS", "", "the MeViS CodaLab competition"),
}
FOREGROUND = 255  # pixel value of the referred object(s); background 0


def submission_layout(name: str) -> SubmissionLayout:
    if name not in SUBMISSIONS:
        raise ConfigError(f"unknown submission format {name!r}; expected one of {sorted(SUBMISSIONS)}")
    return SUBMISSIONS[name]


def mask_png(mask: np.ndarray) -> bytes:
    """bool [H, W] -> PNG bytes, 8-bit greyscale, 0 / 255."""
    buf = io.BytesIO()
    Image.fromarray(np.where(np.asarray(mask, dtype=bool), FOREGROUND, 0).astype(np.uint8), mode="L").save(buf, "PNG")
    return buf.getvalue()


def frame_file(name: str) -> str:
    """`00005` (or `00005.jpg`) -> `00005.png`."""
    stem, ext = os.path.splitext(name)
    return f"{stem if ext.lower() in ('.jpg', '.jpeg', '.png') else name}.png"


def submission_records(records: Sequence[VideoRecord], root: Path | str, name: str, split: Optional[str]
                       ) -> list[VideoRecord]:
    """The records a `name` submission of `split` holds: for ytvos valid, without the videos that
    `meta_expressions/test/meta_expressions.json` lists (the official valid meta lists them too)."""
    records = list(records)
    test_meta = Path(root) / "meta_expressions" / "test" / "meta_expressions.json"
    if name == "ytvos" and split in ("valid", "val") and test_meta.is_file():
        from rvos.data.readers.common import load_json

        test_videos = set(load_json(test_meta, "Ref-YouTube-VOS test meta_expressions")["videos"])
        records = [r for r in records if r.video_id not in test_videos]
    return records


def has_ground_truth(records: Sequence[VideoRecord]) -> bool:
    """Whether any object of `records` has a mask annotation on some frame (else only a server can score)."""
    return any(t.kind == TargetKind.MASK for r in records for tr in r.tracks.values() for t in tr.targets)


class SubmissionZip:
    """`with SubmissionZip(path, "ytvos") as sub: predict_records(model, records, sinks=sub.sinks)`: every
    mask the sinks receive becomes a PNG in the zip; on leaving the block the zip is renamed to `path`
    (or removed, after an error)."""

    def __init__(self, path: Path | str, name: str):
        self.path, self.layout = Path(path), submission_layout(name)
        if self.path.suffix.lower() != ".zip":
            raise ConfigError(f"a submission is a .zip file, got {self.path}")
        self.zf: Optional[zipfile.ZipFile] = None
        self.expressions = self.pngs = 0

    def __enter__(self) -> "SubmissionZip":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}.zip")
        self.zf = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_DEFLATED)
        self.seen: set[str] = set()
        if self.layout.prefix:
            self._dir(self.layout.prefix)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.zf.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)

    def _dir(self, name: str) -> None:
        """A folder entry, as `zip -r` writes them (unzip tools and servers expect none, but some list them)."""
        if name not in self.seen:
            self.seen.add(name)
            self.zf.writestr(name + "/", b"")

    def folder(self, video_id: str, exp_id: str = "") -> str:
        """`[<prefix>/]<video>[/<exp_id>]` inside the zip."""
        return "/".join(p for p in (self.layout.prefix, video_id, exp_id) if p)

    def sinks(self, record: VideoRecord, exps: Sequence[Expression]) -> list[FrameSink]:
        """The sink for one video's expressions (the `sinks` argument of `predict_records`)."""
        return [_ZipSink(self, record.video_id, [e.exp_id for e in exps])]


class _ZipSink(FrameSink):
    def __init__(self, sub: SubmissionZip, video_id: str, exp_ids: list[str]):
        self.sub, self.video_id, self.exp_ids = sub, video_id, [str(e) for e in exp_ids]

    def open(self, video: Video, sentences: list[str]) -> None:
        if len(self.exp_ids) != len(sentences):
            raise ValueError(f"{len(self.exp_ids)} expression ids for {len(sentences)} sentences")
        self.names = [frame_file(n) for n in video.frame_names]
        for e in self.exp_ids:
            folder = self.sub.folder(self.video_id, e)
            if folder in self.sub.seen:
                raise DatasetError(f"expression {e!r} of video {self.video_id!r} twice in one submission")
            self.sub._dir(self.sub.folder(self.video_id, ""))
            self.sub._dir(folder)
        self.sub.expressions += len(self.exp_ids)

    def write(self, index: int, frame, masks: list[np.ndarray]) -> None:
        for e, m in zip(self.exp_ids, masks):
            self.sub.zf.writestr(f"{self.sub.folder(self.video_id, e)}/{self.names[index]}", mask_png(m))
            self.sub.pngs += 1


def write_submission(model, records: Sequence[VideoRecord], path: Path | str, name: str = "ytvos", *,
                     progress: bool = False, **predictor_kwargs):
    """Segment every expression of `records` and write the `name` ("ytvos" | "mevis") submission zip to
    `path`. Returns the predictions (RLE in memory, with scores and presence) for scoring where the split has
    ground truth: `MemoryPredictions(preds, scores=preds.scores, presence=preds.presence)`."""
    from rvos.infer.records import predict_records

    with SubmissionZip(path, name) as sub:
        preds = predict_records(model, records, sinks=sub.sinks, progress=progress, **predictor_kwargs)
    return preds
