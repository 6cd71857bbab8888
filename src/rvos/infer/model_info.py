"""What `rvos segment` and `rvos eval --checkpoint` tell the user about the model they run: the checkpoint, what
it was trained on (train/provenance.py), and, when `rvos segment` falls back to the demo model, that it is a
shapes model and how to train or pass a real one."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from rvos.train.checkpoint import load_checkpoint
from rvos.train.provenance import is_synthetic, provenance, summary_lines


def packaged_configs() -> list[str]:
    """The packaged training configs a user may start from (the test-only tiny ones left out)."""
    from rvos.train.config import PACKAGED_CONFIGS

    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml") if not p.stem.startswith("tiny"))


def how_to_get_a_real_model() -> list[str]:
    return ["For real video, train a model on a real dataset (a Ref-YouTube-VOS, Ref-DAVIS17, MeViS, A2D or JHMDB "
            "layout) and pass it:",
            "    rvos train CONFIG data.root=DATASET --out runs/NAME",
            "    rvos segment VIDEO --text \"...\" --checkpoint runs/NAME/checkpoints/last.pt",
            f"  CONFIG: a packaged config ({', '.join(packaged_configs())}) or a YAML of your own; see "
            "`rvos train --help` and the README's Training section.",
            "  A first real-video model, from the DAVIS sample beside the checkout (about 10 min on 2 CPU cores; J&F "
            "0.37 on unseen DAVIS videos): rvos train objects_davis --out runs/objects_davis"]


def checkpoint_lines(path: str | Path, default: bool = False, ckpt: Optional[dict] = None) -> list[str]:
    """The lines to print about the checkpoint at `path`. `default`: it was not asked for (no --checkpoint), so
    say that it is the fallback demo model and, when it was trained on synthetic shapes, what that means."""
    ckpt = ckpt if ckpt is not None else load_checkpoint(path)
    lines = []
    if default:
        lines.append(f"no --checkpoint given: using the demo model ({path}), the one `rvos demo` trains")
    lines += summary_lines(path, ckpt)
    if default and is_synthetic(provenance(ckpt)):
        lines += ["  This demo model knows synthetic shapes (coloured circles, stars, cars... on textured backgrounds), "
                  "not real objects: on a real video expect empty or wrong masks."]
    if default:
        lines += ["  " + line for line in how_to_get_a_real_model()]
    return lines


def same_data_note(ckpt: dict, dataset: str | Path, records: Sequence) -> Optional[str]:
    """A note when a model is scored on the very dataset split it was trained on (not a held-out score)."""
    info = provenance(ckpt)
    if not info.get("dataset") or not records:
        return None
    if Path(info["dataset"]).resolve() != Path(dataset).resolve():
        return None
    splits = {getattr(r, "split", None) for r in records}
    if splits != {info.get("split")}:
        return None
    trained = set(info.get("video_ids") or [])
    seen = [r for r in records if not trained or r.video_id in trained]
    if not seen:
        return None
    return (f"note: the model was trained on split {info.get('split')!r} of this dataset ({len(seen)} of the "
            f"{len(records)} videos scored were training videos): these are not held-out scores")
