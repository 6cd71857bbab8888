"""Benchmark submission zips: the official layouts (Ref-YouTube-VOS `Annotations/...`, MeViS video folders at the
top, 0/255 greyscale PNGs named by frame), written atomically, and read back by `rvos eval` with the same scores."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from fixtures_layouts import write_mevis, write_ytvos
from rvos.cli import main
from rvos.data.types import Video
from rvos.errors import ConfigError, DatasetError
from rvos.evaluate.predictions import ZipPredictions, open_predictions
from rvos.infer.submission import SubmissionZip, mask_png


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    """A tiny random-weight model in the trainer's checkpoint format. (tests/conftest.py)"""
    return tiny_checkpoint


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A small synthetic benchmark (2 test videos of 8 frames, absent-object sentences included)."""
    from rvos.data.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("synth") / "data"
    return generate(root, SynthConfig(train=0, valid=0, test=2, frames=8, height=64, width=96, workers=1))


def _results(folder):
    return json.loads((folder / "results.json").read_text())


@pytest.mark.parametrize("fmt,prefix", [("ytvos", "Annotations/"), ("mevis", "")])
def test_zip_round_trip_gives_identical_scores(synth, checkpoint, tmp_path, capsys, fmt, prefix):
    out = tmp_path / f"{fmt}.zip"
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(synth), "--split", "test",
                 "--submission", fmt, str(out), "--out", str(tmp_path / "direct")]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "scored like the zip" in printed
    meta = json.loads((synth / "meta_expressions" / "test" / "meta_expressions.json").read_text())["videos"]
    with zipfile.ZipFile(out) as zf:
        pngs = sorted(n for n in zf.namelist() if n.endswith(".png"))
        # every expression of the split (absent-object ones too), every frame, named as the meta names them
        assert pngs == sorted(f"{prefix}{v}/{e}/{f}.png" for v, m in meta.items() for e in m["expressions"]
                              for f in m["frames"])
        with Image.open(io.BytesIO(zf.read(pngs[0]))) as im:
            assert im.mode == "L" and im.size == (96, 64)
        values = set()
        for n in pngs:
            values |= set(np.unique(np.asarray(Image.open(io.BytesIO(zf.read(n))))).tolist())
        assert values <= {0, 255} and values == {0, 255}  # binary 0/255 and not all one value
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial zip left

    assert main(["eval", str(out), "--dataset", str(synth), "--split", "test", "--out", str(tmp_path / "back")]) == 0
    direct, back = _results(tmp_path / "direct"), _results(tmp_path / "back")
    assert back["summary"] == direct["summary"]
    assert back["tables"]["per-expression"] == direct["tables"]["per-expression"]
    assert direct["summary"]["expressions"] == sum(len(m["expressions"]) for m in meta.values())
    assert 0.0 < direct["summary"]["J"] < 1.0  # the masks are neither all empty nor all right: a real comparison


def test_write_submission_from_python(synth, checkpoint, tmp_path):
    """The Python API: write_submission, then the zip read back scores as the predictions it returned."""
    from rvos.data.readers import open_dataset
    from rvos.evaluate.predictions import MemoryPredictions
    from rvos.evaluate.protocols import evaluate_predictions
    from rvos.infer.submission import write_submission
    from rvos.train.checkpoint import load_model_from_checkpoint

    model, _ = load_model_from_checkpoint(checkpoint)
    records = open_dataset(synth, split="test")
    preds = write_submission(model, records, tmp_path / "sub.zip", "ytvos", window=3)
    direct = evaluate_predictions(records, MemoryPredictions(preds, scores=preds.scores, presence=preds.presence),
                                  "all-frames", workers=1)
    back = evaluate_predictions(records, open_predictions(tmp_path / "sub.zip"), "all-frames", workers=1)
    assert back.summary == direct.summary and 0.0 < direct.summary["J"] < 1.0
    assert back.tables["per-expression"] == direct.tables["per-expression"]


def test_mevis_layout_submission(tmp_path, checkpoint, capsys):
    root = tmp_path / "mevis"
    write_mevis(root, "valid_u")
    out = tmp_path / "sub.zip"
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(root), "--submission", "mevis", str(out),
                 "--out", str(tmp_path / "a")]) == 0
    with zipfile.ZipFile(out) as zf:
        assert sorted(n for n in zf.namelist() if n.endswith(".png")) == [f"v1/{e}/{t:05d}.png" for e in "012" for t in range(3)]
    assert main(["eval", str(out), "--dataset", str(root), "--out", str(tmp_path / "b")]) == 0
    assert _results(tmp_path / "a")["summary"] == _results(tmp_path / "b")["summary"]


def test_ytvos_valid_leaves_out_the_test_videos(tmp_path, checkpoint, capsys):
    """The official valid meta_expressions also lists the test videos; the submission holds valid ones only."""
    root = tmp_path / "ytvos"
    write_ytvos(root, "valid", annotations=False)
    (root / "meta_expressions" / "test").mkdir(parents=True)
    (root / "meta_expressions" / "test" / "meta_expressions.json").write_text(json.dumps(
        {"videos": {"vid_b": {"frames": ["00000"], "expressions": {"0": {"exp": "the square"}}}}}))
    out = tmp_path / "sub.zip"
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(root), "--split", "valid",
                 "--submission", "ytvos", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 videos, 3 expressions, 12 PNGs" in printed and "no public ground truth" in printed
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert {n.split("/")[1] for n in names if n.endswith(".png")} == {"vid_a"}
    assert "Annotations/" in names and "Annotations/vid_a/0/" in names  # folder entries, as `zip -r` writes


def test_writer_is_atomic_and_binary(tmp_path):
    path = tmp_path / "s.zip"
    with pytest.raises(RuntimeError):
        with SubmissionZip(path, "mevis") as sub:
            sub.zf.writestr("v/0/00000.png", mask_png(np.eye(4, dtype=bool)))
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    arr = np.asarray(Image.open(io.BytesIO(mask_png(np.eye(3, dtype=bool)))))
    assert arr.dtype == np.uint8 and arr.tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    with pytest.raises(ConfigError, match="unknown submission format"):
        SubmissionZip(path, "davis")
    with pytest.raises(ConfigError, match="is a .zip file"):
        SubmissionZip(tmp_path / "s.tar", "ytvos")


def test_reading_zips_clear_errors(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    with pytest.raises(DatasetError, match="not a readable zip file"):
        open_predictions(bad)
    mixed = tmp_path / "mixed.zip"
    with zipfile.ZipFile(mixed, "w") as zf:
        zf.writestr("Annotations/v/0/00000.png", mask_png(np.zeros((2, 2), bool)))
        zf.writestr("v/1/00000.png", mask_png(np.zeros((2, 2), bool)))
    with pytest.raises(DatasetError, match="mixes PNGs under different folders"):
        ZipPredictions(mixed)
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as zf:
        zf.writestr("v/00000.png", mask_png(np.zeros((2, 2), bool)))
    with pytest.raises(DatasetError, match="is not <video>/<exp_id>/<frame>.png"):
        ZipPredictions(flat)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("Annotations/v/0/00000.png", mask_png(np.eye(2, dtype=bool)))
    preds = open_predictions(good)

    class _Unit:
        key = "0"

    from rvos.data.frames import ArrayFrames

    video = Video("v", ArrayFrames([np.zeros((2, 2, 3), np.uint8)] * 2), 2, 2)
    assert preds.mask(video, _Unit, 0).tolist() == [[True, False], [False, True]]
    with pytest.raises(DatasetError, match="has no Annotations/v/0/00001.png"):
        preds.mask(video, _Unit, 1)


def test_submission_option_errors(synth, checkpoint, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(synth), "--split", "test",
                 "--submission", "refcoco", str(tmp_path / "a.zip")]) == 2
    assert "unknown submission format 'refcoco'" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(checkpoint), "--dataset", str(synth), "--split", "test",
                 "--protocol", "r2", "--submission", "ytvos", str(tmp_path / "a.zip")]) == 2
    assert "does not combine with --protocol r2" in capsys.readouterr().err
