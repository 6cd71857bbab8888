"""Shared bits of the benchmark scripts: the machine line, the exact command, a median timer, markdown tables,
atomic results files.

Scripts in this folder import it as `common` (the script's own folder is on sys.path when run as a script)."""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

SHARED_DATA = Path(os.environ.get("RVOS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
DAVIS_SAMPLE = SHARED_DATA / "davis-sample"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    """One line saying where the numbers were measured: cores, CPU, load, torch version and threads."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: nproc={os.cpu_count()}, CPU: {cpu_model()}, load average at start {load:.2f}, "
            f"python {platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}")


def command_line() -> str:
    """The command that started this process, as it could be pasted into a shell."""
    return "command: " + " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def median_time(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median wall seconds of `runs` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    """A results file, written atomically (a killed benchmark leaves the previous one)."""
    from rvos.train.checkpoint import atomic_write_bytes

    atomic_write_bytes(Path(path), json.dumps(data, indent=1, sort_keys=True).encode())


# A synthetic benchmark small enough for seconds-long smoke runs of the table scripts (each adds its own keys).
SMOKE_SYNTH = dict(train=3, valid=0, test=2, frames=8, height=64, width=96, absent_per_video=1, workers=1)


def ensure_synthetic(root: Path, smoke: dict | None = None) -> None:
    """Generate the seed-0 synthetic benchmark at `root` when it is missing (`smoke`: SynthConfig fields of a tiny
    one)."""
    if (root / "synth.json").is_file():
        return
    from rvos.data.synth import SynthConfig, generate

    print(f"generating the synthetic benchmark in {root} (seed 0)", flush=True)
    generate(root, SynthConfig(seed=0, **(smoke or {})))


def davis_folds(records: list, folds: Sequence[str] | None, repeat: int) -> list[tuple]:
    """Leave-one-out jobs over a DAVIS-layout dataset's records: [(held-out video id, the other videos x `repeat`
    (distinct clips in every batch), [the held-out record])], for `folds` (default: every video)."""
    folds = folds or sorted(r.video_id for r in records)
    return [(h, [r for r in records if r.video_id != h] * repeat, [r for r in records if r.video_id == h])
            for h in folds]
