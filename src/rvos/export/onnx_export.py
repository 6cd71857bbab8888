"""Export a model to a folder of ONNX graphs that rvos.export.runtime.OnnxModel runs on onnxruntime.

    OUT/manifest.json   format, the graphs' input and output names, the tokenizer, the model (and training) config,
                        the parity measured at export
    OUT/vision.onnx     frames [N, 3, H, W] -> C2..C5 (H, W multiples of 32; any N)
    OUT/decode.onnx     C2..C5 of T frames + one sentence's word/sentence features -> mask logits, scores, ...
    OUT/text.onnx       token tensors [K, B, L] -> words [B, L, C_t], sentence [B, C_t]
    OUT/tokenizer/      the transformers tokenizer, when the text encoder has one

An objects-head model (`model.head=objects`) has objects.onnx (C2..C5 -> every frame's object queries) and
refer.onnx (a video's track tokens + sentence features -> track logits, relevance) in place of decode.onnx; its
tracker runs in Python (rvos.export.graphs).

The sentence features are an input of decode.onnx, so one export serves every sentence. Every axis that varies
at inference is dynamic (frames, height, width, words, sentences). The graphs are traced on one set of sizes and
checked against PyTorch on another (other T, H, W and sentence length), so a size baked into a graph fails the
export instead of giving wrong masks later. The folder is written beside OUT and moved into place at the end.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import torch

from rvos.errors import ConfigError
from rvos.export import deps
from rvos.export.graphs import (DECODE_INPUTS, LEVELS, OBJECTS_OUTPUTS, REFER_INPUTS, REFER_OUTPUTS, DecodeGraph,
                                ObjectsGraph, ReferGraph, TextGraph, VisionGraph, decode_outputs, mixes_frames)
from rvos.export.tokenizers import tokenizer_spec
from rvos.models.text import TextFeatures

FORMAT = "rvos-onnx-v1"
MANIFEST = "manifest.json"
# (T frames, H, W, sentence): what the graphs are traced on, and the other sizes they are checked on
TRACE = (2, 64, 96, "the red car on the left")
CHECK = (3, 96, 160, "a small person riding a bicycle next to the brown camel")
MAX_FRAMES = 4096  # longest window a per-frame decode graph is declared for
TOLERANCE = 1e-3  # export fails when onnxruntime and PyTorch differ by more than this x max(1, |output|)


def export_onnx(model, out: str | Path, *, train_config: Optional[dict] = None, source: str = "",
                opset: Optional[int] = None) -> dict:
    """Export `model` (an RVOSModel) to the folder `out`; returns the manifest. `train_config`: the checkpoint's
    config dict, kept so that `rvos segment --runtime onnx` decides the presence gate as for the checkpoint."""
    deps.require(deps.EXPORT, "ONNX export")
    check_exportable(model, source)
    out = Path(out)
    if out.exists() and not (out / MANIFEST).is_file():
        raise ConfigError(f"{out} exists and is not an rvos ONNX export: choose a new folder for --onnx")
    model = model.to("cpu").eval()
    stride = max(model.vision.strides)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial"))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer chatter
            manifest = _export(model, tmp, stride, opset)
        manifest.update({"source": str(source), "config": train_config,
                         "model": model.config.to_dict() if model.config is not None else None,
                         "torch": torch.__version__})
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def check_exportable(model, source: str = "") -> None:
    """ConfigError naming `source` (the checkpoint) and what is supported unless `model` is an RVOSModel that
    decides frame by frame (the form the three graphs carry: per-frame vision, a decode step per window, the text
    encoder)."""
    from rvos.models.rvos_model import RVOSModel

    cfg = getattr(model, "config", None)
    what = type(model).__name__ + (f" (model.head={cfg.head})" if getattr(cfg, "head", None) else "")
    where = f"{source}: " if source else ""
    from rvos.models.object_model import ObjectRVOSModel

    supported = ("ONNX export supports RVOSModel with model.head=single or multi (with any of blcl, r2, "
                 "temporal_layers, fusion_stride) and ObjectRVOSModel (model.head=objects)")
    if not isinstance(model, (RVOSModel, ObjectRVOSModel)):
        raise ConfigError(f"{where}{what} cannot be exported to ONNX. {supported}.")


def _export(model, folder: Path, stride: int, opset: Optional[int]) -> dict:
    if getattr(model, "video_level", False):
        return _export_objects(model, folder, stride, opset)
    from torch.export import Dim

    clip = mixes_frames(model)
    max_t = model.temporal.max_frames if getattr(model, "temporal", None) is not None else MAX_FRAMES
    kw = {"dynamo": True, "external_data": False, "opset_version": opset, "verbose": False}
    t, h, w, sentence = TRACE
    t = min(t, max_t)
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(t, 3, h, w, generator=gen)

    hs, ws = _export_vision(model, frames, folder, stride, kw)

    # decode: C2..C5 of T frames + one sentence -> FRAME_OUTPUTS the model fills
    feats = list(model.encode_frames(frames))
    text = model.encode_text([sentence])
    outputs = decode_outputs(model, feats, text)
    T, L = Dim("T", min=1, max=max_t), Dim("L", min=1, max=4096)
    level_dims = {name: {0: T, 2: (stride // s) * hs, 3: (stride // s) * ws}
                  for name, s in zip(LEVELS, model.vision.strides)}
    _onnx(DecodeGraph(model, outputs), (*feats, text.words, text.pad_mask, text.sentence), folder / "decode.onnx",
          list(DECODE_INPUTS), list(outputs), {**level_dims, "words": {1: L}, "pad_mask": {1: L}, "sentence": None}, kw)
    keys = _export_text(model, sentence, folder, L, kw)

    manifest = {"format": FORMAT, "graphs": {"vision": "vision.onnx", "decode": "decode.onnx", "text": "text.onnx"},
                "stride": stride, "levels": list(LEVELS), "decode_inputs": list(DECODE_INPUTS),
                "decode_outputs": list(outputs), "text_keys": list(keys),
                "tokenizer": tokenizer_spec(model.text, folder), "clip": clip, "max_frames": max_t,
                "trace": list(TRACE[:3])}
    manifest["parity"] = _check(model, folder, manifest, max_t, ("the dog",), _decode_gaps)
    return manifest


def _export_vision(model, frames: torch.Tensor, folder: Path, stride: int, kw: dict):
    """vision.onnx: frames [N, 3, H, W] -> C2..C5; returns the H and W dims (in units of the stride)."""
    from torch.export import Dim

    hs, ws = Dim("H", min=1, max=512), Dim("W", min=1, max=512)
    _onnx(VisionGraph(model), (frames,), folder / "vision.onnx", ["frames"], list(LEVELS),
          {"frames": {0: Dim("N", min=1, max=MAX_FRAMES), 2: stride * hs, 3: stride * ws}}, kw)
    return hs, ws


def _export_text(model, sentence: str, folder: Path, L, kw: dict) -> tuple[str, ...]:
    """text.onnx: tokens [K, B, L] -> words, sentence (the tokenizer stays in Python); returns the token keys."""
    from torch.export import Dim

    tok = model.text.tokenize([sentence, "a dog"])
    keys = tuple(tok)
    tokens = torch.stack([tok[k] for k in keys])  # [K, B, L]
    _onnx(TextGraph(model.text, keys), (tokens,), folder / "text.onnx", ["tokens"], ["words", "sentence"],
          {"tokens": {1: Dim("B", min=1, max=4096), 2: L}}, kw)
    return keys


def _export_objects(model, folder: Path, stride: int, opset: Optional[int]) -> dict:
    """The objects head: vision, objects (per frame), refer (per video and sentence) and text graphs."""
    from torch.export import Dim

    kw = {"dynamo": True, "external_data": False, "opset_version": opset, "verbose": False}
    t, h, w, sentence = TRACE
    frames = torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(0))
    hs, ws = _export_vision(model, frames, folder, stride, kw)

    feats = model.encode_frames(frames)
    N = Dim("N", min=1, max=MAX_FRAMES)
    level_dims = {name: {0: N, 2: (stride // s) * hs, 3: (stride // s) * ws}
                  for name, s in zip(LEVELS, model.vision.strides)}
    _onnx(ObjectsGraph(model), tuple(feats), folder / "objects.onnx", list(LEVELS), list(OBJECTS_OUTPUTS),
          level_dims, kw)

    # refer: traced on two sentences of different lengths over one video's track tokens
    texts = model.encode_text([sentence, "a dog"])
    inputs = _track_inputs(model, feats, frames, 2)
    S, Tb, L = Dim("S", min=1, max=4096), Dim("Tb", min=1, max=max(2, model.bins)), Dim("L", min=1, max=4096)
    _onnx(ReferGraph(model), (*_refer_args(inputs), texts.words, texts.pad_mask, texts.sentence),
          folder / "refer.onnx", list(REFER_INPUTS), list(REFER_OUTPUTS),
          {"tokens": {0: S, 2: Tb}, "alive": {0: S, 2: Tb}, "frame_pos": {0: S, 1: Tb}, "valid": {0: S, 1: Tb},
           "words": {0: S, 1: L}, "pad_mask": {0: S, 1: L}, "sentence": {0: S}}, kw)
    keys = _export_text(model, sentence, folder, L, kw)

    manifest = {"format": FORMAT, "kind": "objects",
                "graphs": {"vision": "vision.onnx", "objects": "objects.onnx", "refer": "refer.onnx",
                           "text": "text.onnx"},
                "stride": stride, "levels": list(LEVELS), "objects_outputs": list(OBJECTS_OUTPUTS),
                "refer_inputs": list(REFER_INPUTS), "refer_outputs": list(REFER_OUTPUTS),
                "bins": int(model.bins), "momentum": float(model.momentum),
                "colour": bool(model.colour), "text_keys": list(keys),
                "tokenizer": tokenizer_spec(model.text, folder), "clip": False, "max_frames": MAX_FRAMES,
                "trace": list(TRACE[:3])}
    manifest["parity"] = _check(model, folder, manifest, MAX_FRAMES, ("the dog", "a person"), _objects_gaps)
    return manifest


def _track_inputs(model, feats: list[torch.Tensor], frames: torch.Tensor, sentences: int):
    """One video's TrackInputs (its frames [T, 3, H, W] tracked as the Predictor does), repeated for `sentences`
    sentences."""
    from rvos.models.referring import TrackInputs

    one = model.track_inputs(model.track_clip(feats, 1, feats[0].shape[0], frames=frames).descriptors)
    return TrackInputs(*(x.expand(sentences, *x.shape[1:]).contiguous()
                         for x in (one.tokens, one.alive, one.frame_pos, one.valid)))


def _refer_args(inputs) -> tuple[torch.Tensor, ...]:
    return inputs.tokens, inputs.alive, inputs.frame_pos, inputs.valid


def _onnx(module, args, path: Path, inputs, outputs, dynamic, kw) -> None:
    program = torch.onnx.export(module, args, input_names=inputs, output_names=outputs, dynamic_shapes=dynamic, **kw)
    program.save(str(path))


def _check(model, folder: Path, manifest: dict, max_t: int, others: tuple[str, ...], head) -> dict:
    """Run the exported graphs on sizes they were not traced on and compare with PyTorch; ConfigError on a gap.
    The vision and text graphs are checked here; `head(model, onnx, frames, features, text, T)` checks the head's graphs
    (gaps by output name) on the check frames and the sentences CHECK's + `others`."""
    from rvos.export.runtime import OnnxModel

    t, h, w, sentence = CHECK
    t = min(t, max_t)
    frames = torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(1))
    onnx = OnnxModel(folder, manifest=manifest, threads=1)
    gaps = {}
    ref_feats = model.encode_frames(frames)
    for name, a, b in zip(LEVELS, onnx.encode_frames(frames), ref_feats):
        gaps[name] = _gap(a, b)
    sentences = [sentence, *others]
    ref_text = model.text._encode(sentences)  # no cache: the encoder's own forward pass
    text = onnx.encode_text(sentences)
    gaps["words"] = _gap(text.words.masked_fill(text.pad_mask[..., None], 0),
                         ref_text.words.masked_fill(ref_text.pad_mask[..., None], 0))
    gaps["sentence"] = _gap(text.sentence, ref_text.sentence)
    gaps.update(head(model, onnx, frames, ref_feats, ref_text, t))
    bad = {k: v for k, v in gaps.items() if v["max_abs"] > TOLERANCE * max(1.0, v["scale"])}
    if bad:
        raise ConfigError(f"ONNX export does not reproduce PyTorch on a {t}x{h}x{w} check input (traced on "
                          f"{'x'.join(map(str, manifest['trace']))}): {bad}")
    return {"input": [t, 3, h, w], "sentence": sentence, "tolerance": TOLERANCE, "outputs": gaps}


def _decode_gaps(model, onnx, frames: torch.Tensor, feats: list[torch.Tensor], text: TextFeatures, t: int) -> dict:
    """decode.onnx on the first sentence."""
    one = TextFeatures(text.words[:1], text.pad_mask[:1], text.sentence[:1])
    ref, got = model.decode(feats, one, 1, t), onnx.decode(feats, one, 1, t)
    return {name: _gap(getattr(got, name), getattr(ref, name)) for name in onnx.manifest["decode_outputs"]}


def _objects_gaps(model, onnx, frames: torch.Tensor, feats: list[torch.Tensor], text: TextFeatures, t: int
                  ) -> dict:
    """objects.onnx on the frames, refer.onnx on their tracks with every sentence."""
    ref_obj, got_obj = model.frame_objects(feats), onnx.frame_objects(feats)
    gaps = {name: _gap(getattr(got_obj, name), getattr(ref_obj, name)) for name in OBJECTS_OUTPUTS}
    inputs = _track_inputs(model, feats, frames, text.sentence.shape[0])
    for name, a, b in zip(REFER_OUTPUTS, onnx.refer(inputs, text), model.refer(inputs, text)):
        gaps[name] = _gap(a, b)
    return gaps


def _gap(a: torch.Tensor, b: torch.Tensor) -> dict:
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape != b.shape:
        raise ConfigError(f"ONNX export: output shape {tuple(a.shape)} differs from PyTorch's {tuple(b.shape)}")
    return {"max_abs": float((a - b).abs().max()) if a.numel() else 0.0,
            "scale": float(b.abs().max()) if b.numel() else 0.0}


def _move_into_place(tmp: Path, out: Path) -> None:
    """Replace `out` (absent, or an earlier export) by the finished folder `tmp`."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

