"""`rvos segment VIDEO --text "..." [--text "..."]`: segment what each sentence refers to in any video the
readers open (mp4/avi/webm, a folder of frames, a GIF) and write palette PNGs, an overlay MP4 and a JSON."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional

from rvos.errors import ConfigError

# The model `rvos demo` trains, relative to the current directory (or to $RVOS_HOME without the "runs/").
DEFAULT_CHECKPOINT = Path("runs/demo/checkpoints/final.pt")


def default_checkpoint() -> Path:
    """The demo model: ./runs/demo/checkpoints/final.pt, else $RVOS_HOME/demo/checkpoints/final.pt."""
    candidates = [DEFAULT_CHECKPOINT]
    if os.environ.get("RVOS_HOME"):
        candidates.append(Path(os.environ["RVOS_HOME"]) / "demo" / "checkpoints" / "final.pt")
    for c in candidates:
        if c.is_file():
            return c
    from rvos.infer.model_info import how_to_get_a_real_model

    raise ConfigError(
        "no --checkpoint given and no demo model found at " + " or ".join(str(c) for c in candidates)
        + ": run `make demo` (or `rvos demo`) to train one (a model of synthetic shapes, for trying rvos out), or "
        "pass --checkpoint PATH.\n" + "\n".join(how_to_get_a_real_model())
    )


def load_model(path: Path, device: str):
    """(model, config) from a checkpoint written by the trainer."""
    from rvos.train.checkpoint import load_model_from_checkpoint

    if not Path(path).is_file():
        raise ConfigError(f"missing checkpoint: {path}")
    return load_model_from_checkpoint(path, map_location=device)


def gate_for_config(cfg) -> Optional[bool]:
    """The Predictor's `gate` for a model trained with `cfg` (a TrainConfig): False when its config says the
    presence head was never fitted (method r2vos with `consensus: false` or a zero `consensus` weight, the
    R2-VOS ablation), whose A would gate at random; None (gate when the model has a presence head) otherwise."""
    if cfg is None or not getattr(getattr(cfg, "model", None), "r2", False):
        return None
    method = getattr(cfg, "method", None)
    if getattr(method, "name", None) != "r2vos":
        return None
    params = dict(getattr(method, "params", None) or {})
    weights = params.get("weights") or {}
    if params.get("consensus") is False or weights.get("consensus", 1) == 0:
        return False
    return None


def presence_line(r) -> str:
    """How a SegmentResult's video-level presence decision reads: '' without a presence head."""
    if r.present is None:
        return ""
    if r.present:
        return f", present (A: p={r.presence_score:.2f})"
    what = "masks emptied" if r.gated else "masks kept (--no-gate)"
    return f", not present (A: p={r.presence_score:.2f}; {what})"


def spans_text(spans) -> str:
    """Half-open spans as 'frames 3-9, 15-23' (inclusive ends), or 'none'."""
    if not spans:
        return "none"
    return "frames " + ", ".join(f"{s}-{e - 1}" if e - s > 1 else f"{s}" for s, e in spans)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path, help="video file (mp4/avi/webm), GIF or folder of frames")
    p.add_argument("--text", action="append", required=True, metavar="SENTENCE",
                   help="referring sentence; repeat for several (they share one pass over the video)")
    p.add_argument("--checkpoint", type=Path, default=None, help=f"model checkpoint (default {DEFAULT_CHECKPOINT})")
    p.add_argument("--out", type=Path, default=None, help="output folder (default segment-out/<video name>)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--window", type=int, default=8, help="frames decoded together (memory stays flat)")
    p.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold")
    p.add_argument("--size", type=int, default=None, help="resize the shorter side to this for the model")
    p.add_argument("--no-video", action="store_true", help="skip the overlay MP4")
    p.add_argument("--no-png", action="store_true", help="skip the palette PNGs")
    p.add_argument("--zip", action="store_true", help="also zip the PNGs (Ref-YouTube-VOS submission style)")
    p.add_argument("--no-gate", action="store_true", help="keep masks even when the presence head says absent")
    p.add_argument("--presence-threshold", type=float, default=None,
                   help="judge the object present when sigmoid(A) >= this (default: the model's own, 0.5 as in eq. 12; an objects model's model.ref_threshold)")
    p.add_argument("--amp", action="store_true", help="mixed precision (bfloat16 on CPU, float16 on CUDA)")
    p.add_argument("--no-mdp", action="store_true",
                   help="TGL models: the language path in every frame instead of propagation outside the predicted spans")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a folder of frames / override")
    p.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                   help="onnx: run on onnxruntime (pip install 'rvos[onnx]'); --checkpoint is then a folder "
                        "written by `rvos export`, or a checkpoint exported for this run")


def run(args: argparse.Namespace) -> int:
    from rvos.data.frames import open_video
    from rvos.infer.predictor import check_sentences
    from rvos.infer.segment import segment_video

    sentences = check_sentences(args.text)
    video = open_video(args.video, fps=args.fps)  # DatasetError naming the video when missing or unreadable
    checkpoint = args.checkpoint or default_checkpoint()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {args.device} asked for but CUDA is not available; use --device cpu")
    if args.runtime == "onnx":
        from rvos.export.command import load_runtime

        if args.amp or args.device != "cpu":
            raise ConfigError("--runtime onnx runs the exported float32 graphs on the CPU: drop --amp and --device "
                              "(they apply to the torch runtime)")
        model, cfg = load_runtime(checkpoint)
    else:
        model, cfg = load_model(checkpoint, args.device)
    from rvos.infer.model_info import checkpoint_lines

    if checkpoint.is_dir():  # an ONNX export folder: describe the checkpoint it was exported from
        source = Path(str(getattr(model, "manifest", {}).get("source", "")))
        print(f"model: {checkpoint} (ONNX export of {source or 'an unrecorded checkpoint'})")
        if source.is_file():
            print("\n".join(checkpoint_lines(source, default=False)))
    else:
        print("\n".join(checkpoint_lines(checkpoint, default=args.checkpoint is None)))  # what it was trained on
    gate = False if args.no_gate else gate_for_config(cfg)
    out = args.out or Path("segment-out") / video.video_id
    results = segment_video(model, video, sentences, out, png=not args.no_png, overlay=not args.no_video,
                            zip_png=args.zip, fps=args.fps, device=args.device, window=args.window,
                            threshold=args.threshold, size=args.size, amp=args.amp, gate=gate, progress=True,
                            presence_threshold=args.presence_threshold, mdp=False if args.no_mdp else None)
    print(f"segmented {len(video)} frames of {args.video} with {checkpoint}"
          + (f" on onnxruntime ({model.threads} threads)" if args.runtime == "onnx" else ""))
    if gate is False and not args.no_gate:
        print("  presence gate off: this model's presence head was not trained (r2vos with consensus: false)")
    for r in results:
        seen = sum(a > 0 for a in r.areas)
        print(f"  {r.sentence!r}: object in {seen}/{len(r.areas)} frames{presence_line(r)}")
        if r.spans is not None:
            print(f"    predicted spans (frames where the sentence holds): {spans_text(r.spans)}")
        if "png" in r.paths:
            print(f"    PNGs: {r.paths['png']}")
    if not args.no_png and args.zip:
        print(f"  zip: {out / 'masks.zip'}")
    if not args.no_video:
        print(f"  overlay video: {out / 'overlay.mp4'}")
    print(f"  per-frame area, score and RLE masks: {out / 'masks.json'}")
    return 0
