"""Shared bits of the benchmark scripts: the machine line, the exact command, a median timer, markdown tables,
atomic results files, and the start, the results file and the resumable run loop of the table scripts.

Scripts in this folder import it as `common` (the script's own folder is on sys.path when run as a script)."""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

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


def start_tables(name: str, smoke: bool, out: Path | None,
                 davis: bool) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """A table script's start: one torch thread in smoke mode (tiny tensors: one thread is faster and does not
    collapse on a shared CPU), the command and machine lines, and (output folder, temporary folder or None): `out`,
    else in smoke mode a temporary folder (the caller cleans it up), else runs/NAME (runs/NAME_davis with `davis`)."""
    if smoke:
        import torch

        torch.set_num_threads(1)
    print(command_line())
    print(machine_line())
    tmpdir = tempfile.TemporaryDirectory(prefix=f"{name}-") if smoke else None
    return out or (Path(tmpdir.name) if tmpdir else Path(f"runs/{name}" + ("_davis" if davis else ""))), tmpdir


def load_results(path: Path, setup: dict) -> dict | None:
    """The runs a results file holds ({} when there is none yet); None, with a message on stderr, when they were
    measured with another setup (resume only what was measured the same way)."""
    saved = json.loads(path.read_text()) if path.is_file() else {"setup": setup, "runs": {}}
    if saved.get("setup") != setup:
        print(f"{path} holds runs of another setup ({saved.get('setup')}); use another --out", file=sys.stderr)
        return None
    return saved["runs"]


def run_grid(path: Path, setup: dict, results: dict, names: Iterable[str], seeds: Iterable[int], steps: int,
             jobs: Sequence[tuple], run_one: Callable[[str, int, list, list, Path], dict],
             describe: Callable[[str, dict], str]) -> None:
    """Train and score every (name, seed, fold) run not yet in `results` (`jobs`: [(fold or None, train, test)];
    keys NAME|seedS|stepsN[|foldF]): run_one(name, seed, train, test, OUT/runs/<key>) -> its result, kept in
    `results` and written to `path` (OUT/results.json) as each finishes, then describe(key, result) printed."""
    for name in names:
        for seed in seeds:
            for fold, train, test in jobs:
                key = f"{name}|seed{seed}|steps{steps}" + (f"|fold{fold}" if fold else "")
                if key in results:
                    continue
                results[key] = r = run_one(name, seed, train, test, path.parent / "runs" / key.replace("|", "_"))
                write_json(path, {"command": command_line(), "machine": machine_line(), "setup": setup,
                                  "runs": results})
                print(describe(key, r), flush=True)
