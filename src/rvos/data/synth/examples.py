"""A picture of the synthetic benchmark for the README: a few videos x frames, the referred object(s) overlaid,
the expression as row title. `python -m rvos.data.synth.examples docs/synth_examples.png`."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from rvos.data.synth.config import SynthConfig
from rvos.data.synth.video import generate_video

KINDS = ("relation", "partial", "motion", "multi", "position")


def _overlay(frame: np.ndarray, mask: np.ndarray, colour=(255, 255, 255)) -> np.ndarray:
    """The frame with a 2 px outline around the mask (a fill would hide the object's colour)."""
    m = mask.astype(np.uint8)
    edge = cv2.dilate(m, np.ones((5, 5), np.uint8)) > cv2.erode(m, np.ones((1, 1), np.uint8))
    out = frame.copy()
    out[edge & ~mask] = colour
    return out


def render_examples(out_png: Path | str, seed: int = 0, videos: int = 3, frames: int = 4,
                    cfg: SynthConfig | None = None) -> Path:
    """Render `videos` rows x `frames` columns to out_png; one expression of a different kind per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = cfg or SynthConfig()
    fig, axes = plt.subplots(videos, frames, figsize=(3.2 * frames, 2.3 * videos), squeeze=False)
    for row in range(videos):
        rng = np.random.default_rng([seed, 99, row])
        video, labels, _, exps = generate_video(rng, cfg)
        want = KINDS[row % len(KINDS)]
        e = next((x for x in exps if x["kind"] == want), exps[0])
        ids = [int(i) for i in ([e["obj_id"]] if isinstance(e["obj_id"], str) else e["obj_id"])]
        cols = np.linspace(0, cfg.frames - 1, frames).round().astype(int)
        spans = e.get("spans")
        for ax, t in zip(axes[row], cols):
            holds = spans is None or any(s <= t < end for s, end in spans)
            mask = np.isin(labels[t], ids) if holds else np.zeros_like(labels[t], bool)
            ax.imshow(_overlay(video[t], mask))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"frame {t}" + ("" if holds else " (not referred)"), fontsize=8)
        title = f'[{e["kind"]}] "{e["exp"]}"' + (f"  spans {spans}" if spans else "")
        axes[row][0].set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out", nargs="?", default="docs/synth_examples.png")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(render_examples(args.out, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
