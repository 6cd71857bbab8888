"""`rvos export CHECKPOINT --onnx OUT`: write the per-frame model and the text encoder as ONNX graphs for
onnxruntime (`rvos segment VIDEO --text ... --runtime onnx --checkpoint OUT`)."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rvos.errors import ConfigError
from rvos.export import deps


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="checkpoint written by `rvos train` or `rvos demo`")
    p.add_argument("--onnx", type=Path, required=True, metavar="OUT",
                   help="folder to write (vision.onnx, decode.onnx, text.onnx, manifest.json; objects.onnx and "
                        "refer.onnx instead of decode.onnx for model.head=objects); an earlier export there is "
                        "replaced")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")


def export_checkpoint(checkpoint: Path, out: Path, opset=None) -> dict:
    """Load a trainer checkpoint and export it to `out`; returns the manifest."""
    deps.require(deps.EXPORT, "rvos export")  # before the (slow) checkpoint load
    from rvos.export.onnx_export import export_onnx
    from rvos.train.checkpoint import load_model_from_checkpoint
    from rvos.train.config import to_dict

    model, cfg = load_model_from_checkpoint(checkpoint)  # ConfigError naming the file when bad
    return export_onnx(model, out, train_config=to_dict(cfg), source=str(checkpoint), opset=opset)


def run(args: argparse.Namespace) -> int:
    manifest = export_checkpoint(args.checkpoint, args.onnx, args.opset)
    sizes = ", ".join(f"{f} {(args.onnx / f).stat().st_size / 1e6:.1f} MB" for f in manifest["graphs"].values())
    print(f"exported {args.checkpoint} to {args.onnx}: {sizes}")
    if manifest.get("kind") == "objects":
        print("  objects head: every frame's objects (objects.onnx), tracked in Python, then the referrer once per "
              f"sentence over the video's tracks (refer.onnx, at most {manifest['bins']} time steps)")
    else:
        print(f"  decode outputs: {', '.join(manifest['decode_outputs'])}; "
              + ("clip form: the frames of a window are decoded together (temporal layers / R2-VOS), at most "
                 f"{manifest['max_frames']} a window" if manifest["clip"] else "frames decoded independently"))
    worst = max(v["max_abs"] for v in manifest["parity"]["outputs"].values())
    print(f"  checked against PyTorch on a {'x'.join(map(str, manifest['parity']['input']))} input: largest "
          f"difference {worst:.2g}")
    print(f"  run it: rvos segment VIDEO --text \"...\" --runtime onnx --checkpoint {args.onnx}")
    return 0


def load_runtime(checkpoint: Path, **kwargs):
    """(OnnxModel, TrainConfig or None) for `rvos segment --runtime onnx`: `checkpoint` is an export folder, or a
    trainer checkpoint that is exported to a temporary folder first."""
    from rvos.export.runtime import OnnxModel

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        model = OnnxModel(checkpoint, **kwargs)
        return model, model.train_config
    if not checkpoint.is_file():
        raise ConfigError(f"missing checkpoint: {checkpoint}")
    deps.require(deps.RUNTIME, "--runtime onnx")
    print(f"exporting {checkpoint} to ONNX for this run (export once with `rvos export {checkpoint} --onnx DIR` and "
          "pass --checkpoint DIR to skip this)")
    with tempfile.TemporaryDirectory(prefix="rvos-onnx-") as tmp:
        export_checkpoint(checkpoint, Path(tmp) / "model")
        model = OnnxModel(Path(tmp) / "model", **kwargs)  # sessions and tokenizer are read into memory here
    return model, model.train_config
