"""The outcome of an evaluation: a summary (the benchmark's headline numbers) and named tables of rows
(per-sequence, per-expression, per-frame), printable and written to disk as CSV + JSON atomically."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _clean(v):
    """JSON-safe value: NaN/inf -> None, numpy scalars -> Python."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows({k: _clean(r.get(k)) for k in cols} for r in rows)
    return buf.getvalue()


def format_table(rows: list[dict], digits: int = 3) -> str:
    """Aligned text table; floats with `digits` decimals."""
    if not rows:
        return "(no rows)"
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v) -> str:
        v = _clean(v)
        return "nan" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


@dataclass
class EvalResult:
    """`summary`: headline numbers; `tables`: name -> rows ("per-sequence", "per-expression", "per-frame")."""

    protocol: str
    summary: dict
    tables: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # what was skipped and why, printed with the report

    def report(self, max_rows: int = 50) -> str:
        """The global numbers and the per-sequence table (first `max_rows` rows), as printed by `rvos eval`."""
        out = [f"protocol: {self.protocol}", format_table([self.summary])] + [f"note: {n}" for n in self.notes]
        seq = self.tables.get("per-sequence", [])
        if seq:
            out += ["", "per sequence:", format_table(seq[:max_rows])]
            if len(seq) > max_rows:
                out.append(f"... {len(seq) - max_rows} more rows in per-sequence_results.csv")
        return "\n".join(out)

    def to_json(self) -> dict:
        return {"protocol": self.protocol, "notes": list(self.notes),
                "summary": {k: _clean(v) for k, v in self.summary.items()},
                "tables": {n: [{k: _clean(v) for k, v in r.items()} for r in rows] for n, rows in self.tables.items()}}

    def write(self, out_dir: Path | str) -> list[Path]:
        """global_results.csv, <table>_results.csv per table and results.json in `out_dir`, each atomically."""
        out_dir = Path(out_dir)
        paths = [out_dir / "global_results.csv"]
        write_atomic(paths[0], to_csv([self.summary]))
        for name, rows in self.tables.items():
            paths.append(out_dir / f"{name}_results.csv")
            write_atomic(paths[-1], to_csv(rows))
        paths.append(out_dir / "results.json")
        write_atomic(paths[-1], json.dumps(self.to_json(), indent=1))
        return paths
