"""`rvos eval` on the DAVIS sample (reproduces the official global CSV) and on bad input (clear errors)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from rvos.cli import main


def test_cli_reproduces_official_davis_results(davis_sample, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["eval", str(davis_sample / "osvos_predictions"), "--dataset", str(davis_sample), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "davis-semi" in printed and "breakdance_1" in printed
    ours = next(csv.DictReader(open(out / "global_results.csv")))
    official = next(csv.DictReader(open(davis_sample / "reference_eval" / "global_results-val.csv")))
    assert {k: float(f"{float(ours[k]):.3f}") for k in official} == {k: float(v) for k, v in official.items()}
    assert abs(float(ours["J&F-Mean"]) - 0.850584) < 1e-6
    seq = list(csv.DictReader(open(out / "per-sequence_results.csv")))
    assert [r["Sequence"] for r in seq][:2] == ["breakdance_1", "camel_1"]
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == "davis-semi" and len(doc["tables"]["per-frame"]) == 495 - 2 * 6
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def _pred_folder(tmp_path, tiny, sizes=None):
    folder = tmp_path / "pred" / "sq"
    for t in range(3):
        h, w = (sizes or {}).get(t, (tiny.H, tiny.W))
        labels = np.zeros((h, w), np.uint8)
        if (h, w) == (tiny.H, tiny.W):
            labels = tiny.OBJ[1].astype(np.uint8) + 2 * tiny.OBJ[2].astype(np.uint8)
        tiny.palette_png(folder / f"{t:05d}.png", labels)
    return tmp_path / "pred"


def test_cli_all_frames_on_tiny_dataset(tiny_davis, tiny, tmp_path, capsys):
    pred = _pred_folder(tmp_path, tiny)
    rc = main(["eval", str(pred), "--dataset", str(tiny_davis), "--protocol", "all-frames", "--out", str(tmp_path / "o")])
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "o" / "per-expression_results.csv")))
    assert [(r["Expression"], float(r["J"]), float(r["F"])) for r in rows] == [("0", 1.0, 1.0), ("1", 1.0, 1.0)]


def test_cli_missing_prediction_file(tiny_davis, tiny, tmp_path, capsys):
    pred = _pred_folder(tmp_path, tiny)
    (pred / "sq" / "00001.png").unlink()
    assert main(["eval", str(pred), "--dataset", str(tiny_davis), "--protocol", "all-frames"]) == 2
    err = capsys.readouterr().err
    assert "missing prediction PNG" in err and "sq/00001.png" in err and "Traceback" not in err


def test_cli_wrong_size_png(tiny_davis, tiny, tmp_path, capsys):
    pred = _pred_folder(tmp_path, tiny, sizes={2: (10, 12)})
    assert main(["eval", str(pred), "--dataset", str(tiny_davis), "--protocol", "all-frames"]) == 2
    err = capsys.readouterr().err
    assert "sq/00002.png is 12x10 (WxH), expected 20x20" in err


def test_cli_unreadable_png(tiny_davis, tiny, tmp_path, capsys):
    pred = _pred_folder(tmp_path, tiny)
    (pred / "sq" / "00001.png").write_bytes(b"\x89PNG garbage")  # davis-semi scores frame 1 only
    assert main(["eval", str(pred), "--dataset", str(tiny_davis)]) == 2
    assert "unreadable prediction PNG" in capsys.readouterr().err


@pytest.mark.parametrize("make", ["missing", "empty", "bad-json"])
def test_cli_bad_prediction_path(tiny_davis, tmp_path, capsys, make):
    path = tmp_path / ("p.json" if make == "bad-json" else "pred")
    if make == "empty":
        path.mkdir()
    elif make == "bad-json":
        path.write_text("{not json")
    assert main(["eval", str(path), "--dataset", str(tiny_davis)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
