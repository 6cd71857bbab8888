"""PyTorch vs onnxruntime: end-to-end FPS of the streaming Predictor (decode the MP4, resize/pad, encode, fuse +
FPN + head, upsample, threshold to full-size masks) at 360x640 and 480x854 on this CPU, both runtimes timed
interleaved in one run, with the onnxruntime options asked for, and the mask IoU of each against PyTorch.

    /work/bin/heavy .venv/bin/python benchmarks/onnx_speed.py --onnx runs/onnx-bench/lite0 [--frames 32] [--runs 3]
        [--modes ort,ort-extended,...|all] [--source mp4|memory] [--head single|multi|objects]

Model: the default ModelConfig (the demo's SimRVOS: EfficientNet-Lite0 with ImageNet weights + MiniLM, single
query head with random weights, seed 0: speed does not depend on the head's weights), one sentence, window 8, as
benchmarks/infer_speed.py; `--head objects`: the object-centric model (same encoders, random decoder and referrer
weights; its IoU check keeps the best track, gate off). The video: the first `--frames` DAVIS-sample frames resized to each size, written once
as an MP4 (mp4v) and decoded with OpenCV inside every timed run (`--source memory`: frames already in memory, as
infer_speed.py measures). Every mode is timed in interleaved rounds (median of `--runs` after one warm-up).
Threads: torch and onnxruntime both use OMP_NUM_THREADS (torch.get_num_threads()) unless a mode says otherwise;
/work/bin/heavy sets 1. IoU: the first `--iou-frames` frames of the six DAVIS-sample videos at 480x854, each
video's Ref-DAVIS sentence, threshold set so that about half of the pixels are foreground (random head weights give
empty masks at 0.5); the minimum over frames of the IoU with PyTorch's masks. `--profile`: ms per frame by part
(video decode, encode_frames, the head's calls, the rest) and end to end / backbone (encode_frames' share of the
total), each the median of `--runs` more interleaved runs. Mode `ort-obj-plain` (objects head) runs the object
decoder exported as written for training instead of the inference form `rvos export` writes, to measure what that
form gains. The int8 vision graph is calibrated on the last two frames of each DAVIS-sample video, which the IoU
check does not use. Quantised graphs and the MP4s are written beside the export (`--onnx` keeps them for the next
run).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import rvos  # noqa: F401  (first: sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP)
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "export"))
from common import DAVIS_SAMPLE, command_line, machine_line  # noqa: E402
from infer_speed import interleaved_medians, random_frames  # noqa: E402

from rvos.data.frames import open_video  # noqa: E402
from rvos.data.types import Video  # noqa: E402
from rvos.export import OnnxModel, export_onnx  # noqa: E402
from rvos.infer.predictor import Predictor  # noqa: E402
from rvos.models import ModelConfig, build_model  # noqa: E402

SENTENCE = "the person riding a bike on the left"


def quantized_decoders(folder: Path) -> dict[str, str]:
    """Extra decode graphs beside the export: dynamic int8 (weights int8, activations quantised per call) and
    float16 (inputs and outputs kept float32)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = {}
    if not (folder / "decode.int8.onnx").is_file():
        # the exporter's intermediate shapes trip onnx's shape inference in the quantiser: drop them first
        m = onnx.load(str(folder / "decode.onnx"))
        del m.graph.value_info[:]
        onnx.save(m, str(folder / "decode.noshapes.onnx"))
        quantize_dynamic(str(folder / "decode.noshapes.onnx"), str(folder / "decode.int8.onnx"),
                         weight_type=QuantType.QInt8)
    out["int8"] = "decode.int8.onnx"
    if not (folder / "decode.fp16.onnx").is_file():
        m = onnx.load(str(folder / "decode.onnx"))
        del m.graph.value_info[:]  # with the exporter's value_info the converter inserts duplicate Casts
        m = convert_float_to_float16(m, keep_io_types=True)
        seen, nodes = set(), []
        for node in m.graph.node:  # the converter inserts one Cast per consumer of some values, all with one name
            key = node.SerializeToString()
            if key not in seen:
                seen.add(key)
                nodes.append(node)
        del m.graph.node[:]
        m.graph.node.extend(topological(m.graph, nodes))  # onnxruntime 1.30 segfaults on an unsorted graph
        onnx.checker.check_model(m)
        onnx.save(m, str(folder / "decode.fp16.onnx"))
    out["fp16"] = "decode.fp16.onnx"
    return out


def topological(graph, nodes: list) -> list:
    """`nodes` ordered so that every node comes after the nodes whose outputs it reads."""
    known = {v.name for v in graph.input} | {v.name for v in graph.initializer} | {""}
    out = []
    while nodes:
        rest = [n for n in nodes if not all(i in known for i in n.input)]
        ready = [n for n in nodes if all(i in known for i in n.input)]
        if not ready:
            raise RuntimeError(f"cycle or missing input among {len(nodes)} nodes, e.g. {nodes[0].name}")
        for n in ready:
            out.append(n)
            known.update(n.output)
        nodes = rest
    return out


def quantized_vision(folder: Path, frames: list) -> str:
    """Static int8 (QDQ, per-channel weights, uint8 activations) of the vision graph, calibrated on `frames`."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from rvos.infer.geometry import Geometry

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(frames)

        def get_next(self):
            f = next(self.items, None)
            if f is None:
                return None
            return {"frames": Geometry.create(*f.shape[:2]).to_input([f]).numpy()}

    path = folder / "vision.int8.onnx"
    if not path.is_file():
        m = onnx.load(str(folder / "vision.onnx"))
        del m.graph.value_info[:]
        onnx.save(m, str(folder / "vision.noshapes.onnx"))
        quantize_static(str(folder / "vision.noshapes.onnx"), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path.name


def calibration_frames(root: Path, per_video: int = 2) -> list:
    """The last `per_video` frames of each DAVIS-sample video: frames the IoU check (the first frames) never sees."""
    from rvos.data.readers import open_dataset

    return [r.video.frame(i) for r in open_dataset(root) for i in range(len(r.video) - per_video, len(r.video))]


MODES = {  # key: (label, OnnxModel kwargs, Predictor kwargs); "dec:int8" etc. name graphs built on demand
    "ort": ("onnxruntime (opt all, 1 frame a vision call)", {}, {}),
    "ort-extended": ("onnxruntime, opt extended", {"optimization": "extended"}, {}),
    "ort-basic": ("onnxruntime, opt basic", {"optimization": "basic"}, {}),
    "ort-disable": ("onnxruntime, opt disabled", {"optimization": "disable"}, {}),
    "ort-batch8": ("onnxruntime, 8 frames a vision call", {}, {"encode_batch": 8}),
    "ort-spin": ("onnxruntime, spinning threads", {"spinning": True}, {}),
    "ort-1thread": ("onnxruntime, 1 thread", {"threads": 1}, {}),
    "ort-dec-int8": ("onnxruntime, decoder int8 (dynamic)", {"graphs": {"decode": "dec:int8"}}, {}),
    # opt all (its NCHWc layout pass) segfaults onnxruntime 1.30 when it builds this graph's session
    "ort-dec-fp16": ("onnxruntime, decoder fp16 (opt extended)",
                     {"graphs": {"decode": "dec:fp16"}, "optimization": "extended"}, {}),
    "ort-vis-int8": ("onnxruntime, vision int8 (static QDQ)", {"graphs": {"vision": "vis:int8"}}, {}),
    "ort-all-int8": ("onnxruntime, vision + decoder int8", {"graphs": {"vision": "vis:int8", "decode": "dec:int8"}},
                     {}),
    # objects head: its decoder exported as written for training (ObjectDecoder.forward), not in the inference
    # form `rvos export` writes (export/objects_graph.py)
    "ort-obj-plain": ("onnxruntime, object decoder in training form", {"graphs": {"objects": "obj:plain"}}, {}),
}


class _PlainObjects(torch.nn.Module):
    def __init__(self, objects):
        super().__init__()
        self.objects = objects

    def forward(self, c2, c3, c4, c5):
        out = self.objects([c2, c3, c4, c5])
        return out.embed, out.logits, out.masks


def plain_objects_graph(model, folder: Path) -> str:
    """objects.plain.onnx beside the export: ObjectDecoder.forward as the graph, dynamic in frames and size."""
    from torch.export import Dim

    from rvos.export.graphs import LEVELS, OBJECTS_OUTPUTS

    path = folder / "objects.plain.onnx"
    if not path.is_file():
        feats = model.encode_frames(torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0)))
        n, hs, ws = Dim("N", min=1, max=4096), Dim("hs", min=1, max=256), Dim("ws", min=1, max=256)
        dims = {name: {0: n, 2: (32 // s) * hs, 3: (32 // s) * ws} for name, s in zip(LEVELS, model.vision.strides)}
        torch.onnx.export(_PlainObjects(model.objects).eval(), tuple(feats), input_names=list(LEVELS),
                          output_names=list(OBJECTS_OUTPUTS), dynamic_shapes=dims, dynamo=True,
                          external_data=False, verbose=False).save(str(path))
    return path.name


def onnx_modes(folder: Path, keys: list[str], calibrate, model) -> dict[str, tuple[str, dict, dict]]:
    """The modes `keys` with the extra graphs they name built (only those) and put in their kwargs."""
    built: dict[str, str] = {}

    def graph(name: str) -> str:
        if name not in built:
            if name == "obj:plain":
                built[name] = plain_objects_graph(model, folder)
            elif name.startswith("dec:"):
                built.update({f"dec:{k}": v for k, v in quantized_decoders(folder).items()})
            else:
                frames = calibrate()
                if not frames:
                    raise SystemExit("the int8 vision graph is calibrated on the DAVIS sample, which is missing")
                built[name] = quantized_vision(folder, frames)
        return built[name]

    out = {}
    for key in keys:
        label, kw, pkw = MODES[key]
        if "graphs" in kw:
            kw = {**kw, "graphs": {g: graph(f) for g, f in kw["graphs"].items()}}
        out[key] = (label, kw, pkw)
    return out


def video_file(folder: Path, h: int, w: int, n: int) -> Path:
    """An MP4 (mp4v) of `n` frames at h x w: the DAVIS-sample frames resized (random frames without it), so the
    timed path decodes a real video file as `rvos segment` does."""
    import cv2

    path = folder / f"bench-{h}x{w}-{n}.mp4"
    if path.is_file():
        return path
    if DAVIS_SAMPLE.is_dir():
        files = sorted((DAVIS_SAMPLE / "DAVIS" / "JPEGImages" / "480p").glob("*/*.jpg"))[:n]
        frames = [cv2.resize(cv2.imread(str(f)), (w, h), interpolation=cv2.INTER_AREA) for f in files]
    else:
        frames = [f[:, :, ::-1] for f in (random_frames(n, h, w).read(i) for i in range(n))]
    tmp = path.with_suffix(".partial.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    tmp.replace(path)
    return path


def profile(predictor: Predictor, runtime, video: Video, frames: int) -> dict[str, float]:
    """ms per frame of one `segment` run split into: reading (video decode), encode_frames, decode (objects head:
    frame_objects, refer), encode_text and the rest (the Predictor's resize/pad, upsampling to the frame, thresholding, bookkeeping)."""
    calls = ("encode_frames", "frame_objects", "refer", "encode_text") if getattr(runtime, "video_level", False) \
        else ("encode_frames", "decode", "encode_text")
    spent = {"read video": 0.0, **{n: 0.0 for n in calls}}

    def timed(name, fn):
        def call(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t0
        return call

    saved = {name: getattr(runtime, name) for name in calls}
    try:
        for name, fn in saved.items():
            setattr(runtime, name, timed(name, fn))  # instance attributes shadow the methods for this run
        video.source.read = timed("read video", video.source.read)
        t0 = time.perf_counter()
        predictor.segment(video, [SENTENCE])
        total = time.perf_counter() - t0
    finally:
        for name in saved:
            if name in vars(runtime):
                delattr(runtime, name)
    spent["rest (Predictor)"] = total - sum(spent.values())
    spent["total"] = total
    return {k: v * 1000 / frames for k, v in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="360x640,480x854")
    ap.add_argument("--source", choices=("mp4", "memory"), default="mp4",
                    help="mp4: decode a video file in the timed path (end to end); memory: frames already decoded")
    ap.add_argument("--onnx", type=Path, default=None, help="reuse (or write) the export, and the test videos, here")
    ap.add_argument("--iou-frames", type=int, default=4, help="0: skip the IoU check")
    ap.add_argument("--profile", action="store_true", help="also print where the time goes and the backbone share (--runs more interleaved runs, medians)")
    ap.add_argument("--head", default="single", choices=("single", "multi", "objects"),
                    help="objects: the object-centric model (vision + objects graphs per frame, the Python tracker, "
                         "the refer graph once per sentence)")
    ap.add_argument("--modes", default="ort", help=f"comma-separated onnxruntime modes ({', '.join(MODES)}), or all; "
                                                   "torch is always timed as the reference")
    args = ap.parse_args()
    keys = list(MODES) if args.modes == "all" else args.modes.split(",")
    unknown = [k for k in keys if k not in MODES]
    if unknown:
        raise SystemExit(f"unknown mode(s) {unknown}; known: {', '.join(MODES)}")
    torch.manual_seed(0)
    model = build_model(ModelConfig(head=args.head)).eval()
    folder = args.onnx or Path(tempfile.mkdtemp(prefix="rvos-onnx-bench-")) / f"lite0-{args.head}"
    if (folder / "manifest.json").is_file() and \
            (json.loads((folder / "manifest.json").read_text()).get("model") or {}).get("head") != args.head:
        raise SystemExit(f"{folder} holds an export of another head than --head {args.head}; choose another --onnx")
    if not (folder / "manifest.json").is_file():
        t0 = time.perf_counter()
        export_onnx(model, folder)
        print(f"exported to {folder} in {time.perf_counter() - t0:.0f} s")
    threads = torch.get_num_threads()
    print(machine_line())
    print(command_line())
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, CPUExecutionProvider; OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {threads}")

    from export_helpers import balanced_threshold, davis_clips, ious

    have_davis = DAVIS_SAMPLE.is_dir()
    modes = {"torch": ("torch (eager)", None, {}),
             **onnx_modes(folder, keys, lambda: calibration_frames(DAVIS_SAMPLE) if have_davis else [], model)}
    runtimes = {k: model if kw is None else OnnxModel(folder, **kw) for k, (_, kw, _) in modes.items()}
    for key, rt in runtimes.items():
        if key != "torch":
            print(f"  {key}: {rt.threads} intra-op threads")

    clips = davis_clips(DAVIS_SAMPLE, args.iou_frames) if have_davis and args.iou_frames else []
    worst = {}
    for video, sentence in clips:
        thr = balanced_threshold(model, video, sentence)
        gate = dict(gate=False) if args.head == "objects" else {}  # random referrer weights: keep the best track
        ref = Predictor(model, keep_rle=True, threshold=thr, **gate).segment(video, [sentence])[0].rles
        for key, rt in runtimes.items():
            if key != "torch":
                got = Predictor(rt, keep_rle=True, threshold=thr, **gate, **modes[key][2]).segment(video, [sentence])[0].rles
                worst[key] = min(worst.get(key, 1.0), min(ious(ref, got)))

    what = "MP4 decoded in the timed path" if args.source == "mp4" else "frames in memory"
    print(f"\nmedian of {args.runs} interleaved runs (after one warm-up) of {args.frames} frames ({what}), one "
          f"sentence, window 8; {threads} thread(s)")
    print(f"| input | runtime | ms/frame | FPS | vs torch | min IoU vs torch (DAVIS, {len(clips)} videos x "
          f"{args.iou_frames} frames) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        if args.source == "mp4":
            path = video_file(folder.parent, h, w, args.frames)
            load = (lambda path=path: open_video(path))
        else:
            frames = random_frames(args.frames, h, w)
            load = (lambda frames=frames, h=h, w=w: Video("bench", frames, h, w, 24.0))
        fns = {}
        for key, rt in runtimes.items():
            p = Predictor(rt, window=8, **modes[key][2])
            fns[key] = (lambda p=p: p.segment(load(), [SENTENCE]))
        rows = {key: t / args.frames for key, t in interleaved_medians(fns, args.runs).items()}
        for key, t in rows.items():
            iou = "-" if key == "torch" else (f"{worst[key]:.4f}" if key in worst else "n/a")
            print(f"| {size} | {modes[key][0]} | {t * 1000:.1f} | {1 / t:.2f} | {rows['torch'] / t:.2f}x | {iou} |",
                  flush=True)
        if args.profile:  # --runs more rounds, interleaved; the median of each part
            runs = {key: [] for key in runtimes}
            for _ in range(args.runs):
                for key, rt in runtimes.items():
                    runs[key].append(profile(Predictor(rt, window=8, **modes[key][2]), rt, load(), args.frames))
            for key, got in runs.items():
                parts = {k: statistics.median(r[k] for r in got) for k in got[0]}
                share = statistics.median(r["encode_frames"] / r["total"] for r in got)
                print(f"  profile {size} {key} (ms/frame, median of {args.runs}): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
                      + f"; end to end / backbone {share:.1%}", flush=True)


if __name__ == "__main__":
    main()
