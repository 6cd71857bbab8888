"""What an objects model's track descriptors say about the objects, read by a linear probe: from a run's track
cache (OUT/tracks.pt) on the synthetic benchmark, each track assigned to an annotated object is averaged over the
frames where it is an object, and a logistic regression learns the object's colour and category from parts of the
descriptor (the first 70% of the videos, by id) and is scored on the rest. A part that reads an attribute well
already holds it; a referrer that confuses that attribute fails elsewhere.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/descriptor_probe.py --tracks runs/exp/c0/tracks.pt \
        --data runs/exp/data [--colour]    # --colour: the run used model.ref_colour (its last 3 channels)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import command_line, machine_line, markdown_table  # noqa: E402
from rvos.models.referring import COLOUR, GEOMETRY  # noqa: E402


def track_rows(tracks: Path, meta: dict) -> list[tuple[str, torch.Tensor, dict]]:
    """(video id, mean descriptor over the frames where the track is an object, the object's attributes)."""
    rows = []
    for d in torch.load(tracks, map_location="cpu", weights_only=True):
        if d["flipped"] or d["video_id"] not in meta:  # mirrored copies and extra videos are left out
            continue
        desc = d["descriptors"].float()  # [T, K, F]
        for k, oid in d["assign"].items():
            alive = desc[:, k, GEOMETRY - 1] > 0.5  # objectness probability
            if alive.any():
                rows.append((d["video_id"], desc[alive, k].mean(0), meta[d["video_id"]]["objects"][str(oid)]))
    return rows


def probe(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, classes: int, steps: int = 500) -> float:
    """Held-out accuracy of a logistic regression on standardised features (seeded)."""
    torch.manual_seed(0)
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-4
    x = (x - mu) / sd
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), 1e-2, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(x[train]), y[train]).backward()
        opt.step()
    with torch.no_grad():
        return float((lin(x[~train]).argmax(1) == y[~train]).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=Path, required=True, help="a run's OUT/tracks.pt")
    ap.add_argument("--data", type=Path, required=True, help="the synthetic benchmark it was trained on")
    ap.add_argument("--split", default="train")
    ap.add_argument("--colour", action="store_true", help="the descriptors end with model.ref_colour's RGB")
    args = ap.parse_args()
    print(machine_line())
    print(command_line())
    meta = json.loads((args.data / args.split / "meta.json").read_text())["videos"]
    rows = track_rows(args.tracks, meta)
    videos = sorted({r[0] for r in rows})
    first = set(videos[: int(0.7 * len(videos))])
    train = torch.tensor([r[0] in first for r in rows])
    x = torch.stack([r[1] for r in rows])
    end = x.shape[1] - (COLOUR if args.colour else 0)
    parts = {"query embedding + C2/C3/C4 pooled": slice(GEOMETRY, end), "whole descriptor": slice(0, x.shape[1])}
    if args.colour:
        parts = {"mean RGB under the mask (3)": slice(end, x.shape[1]), **parts}
    table = []
    for attribute in ("colour", "category"):
        names = sorted({r[2][attribute] for r in rows})
        y = torch.tensor([names.index(r[2][attribute]) for r in rows])
        for part, sl in parts.items():
            table.append([attribute, f"{len(names)}", part, f"{probe(x[:, sl], y, train, len(names)):.3f}"])
    print(f"{len(rows)} assigned tracks in {len(videos)} videos; {int((~train).sum())} held out")
    print(markdown_table(["attribute", "classes", "descriptor part", "held-out accuracy"], table))


if __name__ == "__main__":
    main()
