"""Metrics log (JSON lines, one record per logged step) and a PNG plot of the training curves."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from rvos.train.checkpoint import atomic_write_bytes


class MetricsLog:
    """Appends {"step": s, name: value, ...} lines to `path`. `truncate(step)` drops lines after `step` (a resumed
    run rewrites what the killed run logged after its last checkpoint)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, values: dict[str, float]) -> None:
        rec = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate(self, step: int) -> None:
        kept = [r for r in self.read() if r["step"] <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode())


def plot_metrics(log_path: str | Path, png_path: str | Path) -> None:
    """One panel per metric (loss parts, lr, evaluation scores) against the step, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = MetricsLog(log_path).read()
    names = sorted({k for r in records for k in r if k != "step"}, key=lambda k: (k != "loss", k))
    if not names:
        return
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        pts = [(r["step"], r[name]) for r in records if name in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=80)
        os.replace(tmp, png_path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
