"""How good the object decoder's masks are, whatever the sentence: for every annotated object of every frame, the
IoU of the best confident object query (objectness > 0.5) of an objects-head model (`model.head=objects`, phase 1
or the whole model). It bounds what any referrer can reach with these masks.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/object_masks.py --checkpoint runs/objects/objects/checkpoints/last.pt \
        --data data/synth --split valid
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import command_line, machine_line  # noqa: E402


def best_query_ious(model, record, size: tuple[int, int]) -> tuple[list[float], list[float]]:
    """(best IoU over confident queries, best IoU over all queries) for each annotated object of each frame."""
    conf, anyq = [], []
    with torch.inference_mode():
        frames = np.stack([record.video.frame(t) for t in range(len(record.video))])
        x = F.interpolate(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0, size=size,
                          mode="bilinear", align_corners=False)
        objects = model.frame_objects(model.encode_frames(x))
        keep = objects.logits.sigmoid() > 0.5  # [T, Q]
        for t in range(len(record.video)):
            masks = F.interpolate(objects.masks[t: t + 1], size=(record.video.height, record.video.width),
                                  mode="bilinear", align_corners=False)[0] > 0  # [Q, H, W]
            for track in record.tracks.values():
                target = track.targets[t]
                if target.mask is None:
                    continue
                g = torch.from_numpy(np.asarray(target.load_mask())).bool()
                if not g.any():
                    continue
                iou = (masks & g).flatten(1).sum(1).float() / (masks | g).flatten(1).sum(1).float().clamp_min(1)
                anyq.append(float(iou.max()))
                conf.append(float(iou[keep[t]].max()) if keep[t].any() else 0.0)
    return conf, anyq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("data/synth"))
    ap.add_argument("--split", default="valid")
    ap.add_argument("--videos", nargs="+", default=None, help="only these videos (e.g. a held-out fold)")
    args = ap.parse_args()
    print(machine_line())
    print(command_line())
    from rvos.data.readers import open_dataset
    from rvos.errors import ConfigError
    from rvos.train.checkpoint import load_model_from_checkpoint

    model, cfg = load_model_from_checkpoint(args.checkpoint)
    if not getattr(model, "video_level", False):
        raise SystemExit(str(ConfigError(f"{args.checkpoint}: not an objects-head model (model.head=objects)")))
    model.eval()
    conf, anyq = [], []
    for record in open_dataset(args.data, split=args.split):
        if args.videos and record.video_id not in args.videos:
            continue
        c, a = best_query_ious(model, record, tuple(cfg.data.clip.size))
        conf += c
        anyq += a
    conf = np.array(conf)
    print(f"{args.split}: {len(conf)} object-frames; mean best IoU over confident queries {conf.mean():.3f}, "
          f"over all queries {np.mean(anyq):.3f}; object-frames with IoU > 0.5: {np.mean(conf > 0.5):.3f}")


if __name__ == "__main__":
    main()
