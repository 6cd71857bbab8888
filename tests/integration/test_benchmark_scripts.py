"""The training benchmarks run end to end in their --smoke mode and print the tables BENCHMARKS.md takes; their
small helpers (frame cut, step timer, markdown table) do what they say."""
from __future__ import annotations

import re
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[2]

BENCH = REPO / "benchmarks"


def run_script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def table_rows(out: str, header: str) -> list[list[str]]:
    """Cells of the markdown table that starts with `header` (the separator line skipped)."""
    lines = out.splitlines()
    start = lines.index(header)
    assert re.fullmatch(r"\|(---\|)+", lines[start + 1])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


@pytest.fixture
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


def test_davis_crossval_smoke(davis_sample):
    out = run_script("davis_crossval.py", "--smoke", "--data", str(davis_sample))
    assert out.startswith("command: ") and "davis_crossval.py --smoke" in out.splitlines()[0]
    assert re.search(r"^machine: nproc=\d+, CPU: .+, torch .+, torch threads \d+$", out, re.M)
    assert re.search(r"^feature cache: 72 frames \(plain \+ flipped\) at 32x56 in ", out, re.M)  # 6 videos x 6 frames x 2
    rows = table_rows(out, "| held-out sequence | sentence | J | F | J&F | train s | eval s |")
    assert [r[0] for r in rows] == ["drift-chicane", "car-roundabout", "**mean**"]
    assert rows[0][1] == '"a car racing"' and rows[1][1] == '"a black car moving through a roundabout"'
    folds = [[float(v) for v in r[2:5]] for r in rows[:2]]
    for j, f, jf in folds:
        assert 0.0 <= j <= 1.0 and 0.0 <= f <= 1.0 and abs(jf - (j + f) / 2) <= 1e-3
    mean = [float(v.strip("*")) for v in rows[2][2:5]]
    assert mean == pytest.approx([(a + b) / 2 for a, b in zip(*folds)], abs=1e-3)


def test_train_throughput_smoke():
    out = run_script("train_throughput.py", "--smoke")
    assert out.startswith("command: ") and re.search(r"^machine: nproc=\d+", out, re.M)
    assert re.search(r"^data: 2 synthetic videos, 16 frames, .*T=2, 32x48, batch 2; median of 3 steps", out, re.M)
    rows = table_rows(out, "| mode | median step s | clips/s | speed-up |")
    assert len(rows) == 3 and rows[0][0].startswith("no cache") and rows[1][0].startswith("feature cache")
    (off, off_rate), (on, on_rate) = [(float(r[1]), float(r[2])) for r in rows[:2]]
    assert off > 0 and on > 0
    # clips/s = batch (2) / step time; the table rounds step times to 3 decimals, so compare within that rounding
    for step, rate in ((off, off_rate), (on, on_rate)):
        assert 2 / (step + 0.0005) - 0.01 <= rate <= 2 / max(step - 0.0005, 1e-9) + 0.01
    speedup = float(rows[1][3].rstrip("x"))
    assert (off - 0.0005) / (on + 0.0005) - 0.01 <= speedup <= (off + 0.0005) / max(on - 0.0005, 1e-9) + 0.01
    assert re.fullmatch(r"cache build, one-off \(32 frames\)", rows[2][0])  # 2 videos x 8 frames x 2 views


def test_first_frames_cuts_frames_and_targets(davis_sample, bench_path):
    from davis_crossval import first_frames
    from rvos.data.readers import open_dataset

    rec = open_dataset(davis_sample, layout="davis")[0]
    cut = first_frames(rec, 3)
    assert len(cut.video) == 3 and cut.video.frame_names == rec.video.frame_names[:3]
    assert all(len(t.targets) == 3 for t in cut.tracks.values())
    assert (cut.video.frame(2) == rec.video.frame(2)).all()
    assert first_frames(rec, 10_000) is rec


def test_step_timer_and_markdown_table(bench_path):
    from common import markdown_table
    from train_throughput import StepTimer

    timer = StepTimer()
    timer.ends = [1.0, 2.0, 4.0, 7.0, 11.0]  # ends of steps 1..5
    assert timer.times(2) == [2.0, 3.0, 4.0]  # steps 3, 4, 5: from the end of step 2 on
    assert timer.times(1) == [1.0, 2.0, 3.0, 4.0]
    assert markdown_table(["a", "b"], [(1, "x"), ("2.50", "")]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2.50 |  |"


def test_tgl_table_smoke():
    out = run_script("tgl_table.py", "--smoke", "--rows", "baseline", "all")
    assert out.startswith("command: ") and re.search(r"^machine: nproc=\d+", out, re.M)
    header = ("| setting | J&F | J | F | tIoU | J&F motion | J&F partial | J&F multi | J&F absent | runs |")
    rows = table_rows(out, header)
    assert [r[0] for r in rows] == ["SimRVOS baseline", "+ all (moment head, MGS, MDP, OSS)",
                                    "+ all (moment head, MGS, MDP, OSS), language path everywhere",
                                    "+ all (moment head, MGS, MDP, OSS), MDP routed by the annotated spans"]
    for r in rows:
        jf, j, f = (float(v) for v in r[1:4])
        assert 0 <= j <= 100 and 0 <= f <= 100 and abs(jf - (j + f) / 2) <= 0.1 and r[-1] == "1"
    assert table_rows(out, "| setting | tIoU motion | tIoU partial | tIoU multi | tIoU absent |")
    split = table_rows(out, "| setting | partial in:jf | partial out:jf | partial in:ref | partial out:ref | motion out:jf "
                            "| absent out:jf | absent out:ref | absent ref_mask | absent ref_empty |")
    assert [r[0] for r in split] == [r[0] for r in rows]
    assert split[0][7] == "-" and split[1][7] != "-"  # absent out:ref: only a model with a moment head predicts spans


def test_tgl_diagnose_smoke(tmp_path):
    """OSS changes only single-object partial clips that show none of the span, never a frame the MDP language loss
    reads; the propagation probe runs on a checkpoint that tgl_table keeps."""
    data, out = tmp_path / "data", tmp_path / "out"
    run_script("tgl_table.py", "--smoke", "--rows", "mdp", "--data", str(data), "--out", str(out))
    ckpt = out / "runs" / "mdp_seed0_steps3" / "checkpoints" / "last.pt"
    assert ckpt.is_file()
    text = run_script("tgl_diagnose.py", "--data", str(data), "--oss", "--propagation", str(ckpt))
    cols = "| kind | clips | clips changed | frames | frames changed | changed frames in the MDP language loss " \
           "| target pixels | target pixels removed |"
    rows = {r[0]: [float(v) for v in r[1:]] for r in table_rows(text, cols)}
    assert rows["all"][0] == sum(v[0] for k, v in rows.items() if k != "all") > 0
    for kind, (clips, changed, frames, fchanged, in_loss, pixels, removed) in rows.items():
        assert in_loss == 0 and removed <= pixels and fchanged <= frames and changed <= clips
        if kind not in ("partial", "all"):
            assert changed == 0, kind
    prop = table_rows(text, "| mask from | frames | J | F | J&F |") if "| mask from |" in text else []
    for r in prop:
        assert 0 <= float(r[2]) <= 1 and 0 <= float(r[3]) <= 1
    track = table_rows(text, "| frames after | frames | propagation J | propagation F | copy J | copy F |")
    assert track and track[-1][0] == "all" and all(0 <= float(v) <= 1 for v in track[-1][2:])


def test_wsrvos_tables_smoke():
    """WSRVOS vs full vs mask_box and the ablation, tiny everything: one row per run, the text rows at 0 s of
    annotation and the mask regimes above it, the same sentences for every row."""
    out = run_script("wsrvos_tables.py", "--smoke", "--tables", "main", "--runs", "wsrvos", "wsrvos_rules",
                     "wsrvos_masks", "full", "mask_box")
    assert out.startswith("command: ") and "wsrvos_tables.py --smoke" in out.splitlines()[0]
    assert re.search(r"aug_dataset\.jsonl: \d+ expressions augmented", out) and "aug_rules.jsonl" in out
    rows = table_rows(out, "| setting | regime | ann. s | sentences | J&F | J | F | runs |")
    assert [r[1] for r in rows] == ["text", "text", "text", "full", "mask_box"]
    seconds = [float(r[2].replace(",", "")) for r in rows]
    assert seconds[0] == seconds[1] == seconds[2] == 0 and seconds[3] > seconds[4] > 0
    assert len({r[3] for r in rows}) == 1 and all(0 <= float(r[4]) <= 100 for r in rows)
