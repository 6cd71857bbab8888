"""OnnxModel: an exported folder run on onnxruntime behind the calls the streaming Predictor makes of a model
(`encode_frames`, `encode_text`, `decode`, plus `to` and `eval`), so the same Predictor runs either runtime. An
objects-head export opens as OnnxObjectModel, with the calls of the Predictor's video-level path instead of
`decode` (`frame_objects`, `describe`, `track_inputs`, `refer`; the tracker stays in Python):

    from rvos.export import OnnxModel
    from rvos.infer.predictor import Predictor
    results = Predictor(OnnxModel("model-onnx")).segment(video, ["the red car"])

Tensors go in and come out as torch tensors (zero-copy numpy views), so everything around the model (resize,
padding, upsampling, thresholds, spills, writers) is the Predictor's own code in both runtimes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from rvos.errors import ConfigError
from rvos.export import deps
from rvos.export.tokenizers import load_tokenizer
from rvos.models.objects import FrameObjects
from rvos.models.rvos_model import check_decode_inputs
from rvos.models.text import TextFeatures, _check

OPTIMIZATION = ("disable", "basic", "extended", "all")


@dataclass
class FrameDecode:
    """The RVOSOutput fields a decode graph returns (the ones the Predictor reads); absent ones are None."""

    mask_logits: torch.Tensor  # [B, T, Q, H/4, W/4]
    scores: torch.Tensor  # [B, T, Q]
    boxes: Optional[torch.Tensor] = None  # [B, T, Q, 4]
    presence: Optional[torch.Tensor] = None  # [B]
    relevance: Optional[torch.Tensor] = None  # [B, T]


def read_manifest(folder: str | Path) -> dict:
    from rvos.export.onnx_export import FORMAT, MANIFEST

    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ConfigError(f"not an rvos ONNX export (no {MANIFEST}): {folder}; write one with "
                          f"`rvos export CHECKPOINT --onnx {folder}`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"unreadable {path}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{path} is not an rvos ONNX manifest ({FORMAT}); export the checkpoint again")
    return manifest


class OnnxModel:
    def __new__(cls, folder: str | Path, *, manifest: Optional[dict] = None, **kwargs):
        """`OnnxModel(folder)` opens either kind of export: an objects-head export gives an OnnxObjectModel."""
        if cls is OnnxModel and (manifest or read_manifest(folder)).get("kind") == "objects":
            cls = OnnxObjectModel
        return super().__new__(cls)

    def __init__(self, folder: str | Path, *, threads: Optional[int] = None, optimization: str = "all",
                 spinning: bool = False, graphs: Optional[dict[str, str]] = None, manifest: Optional[dict] = None):
        """`threads`: intra-op threads of each session (default: torch's, i.e. OMP_NUM_THREADS);
        `optimization`: onnxruntime graph optimisation level (disable, basic, extended, all); `spinning`: let idle
        threads spin (off, as rvos sets OMP_WAIT_POLICY=PASSIVE for torch: on a shared CPU spinning threads steal
        cores); `graphs`: replace graph files, e.g. {"decode": "decode.int8.onnx"} (as benchmarks/onnx_speed.py
        writes beside an export)."""
        ort = deps.require(deps.RUNTIME, "--runtime onnx")["onnxruntime"]
        if optimization not in OPTIMIZATION:
            raise ConfigError(f"onnx graph optimisation must be one of {OPTIMIZATION}, got {optimization!r}")
        self.folder = Path(folder)
        self.manifest = manifest or read_manifest(self.folder)
        files = {**self.manifest["graphs"], **(graphs or {})}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.log_severity_level = 3
        self.sessions = {}
        for name in files:
            path = self.folder / files[name]
            if not path.is_file():
                raise ConfigError(f"ONNX export {self.folder} lacks {path.name}; export the checkpoint again")
            self.sessions[name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.tokenize = load_tokenizer(self.manifest["tokenizer"], self.folder)
        self.stride = int(self.manifest["stride"])
        self.outputs = tuple(self.manifest.get("decode_outputs", ()))
        self.threads = opts.intra_op_num_threads

    @property
    def config(self):
        """The ModelConfig the export was made from (None when the manifest has none)."""
        from rvos.models.config import ModelConfig

        return None if self.manifest.get("model") is None else ModelConfig.from_dict(self.manifest["model"])

    @property
    def train_config(self):
        """The checkpoint's TrainConfig (None for an export made from a model in Python)."""
        from rvos.train.config import TrainConfig, from_dict

        return None if self.manifest.get("config") is None else from_dict(TrainConfig, self.manifest["config"])

    # the module calls the Predictor makes
    def to(self, device) -> "OnnxModel":
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the onnx runtime runs on the CPU; got device {device!r} (use --device cpu, or the "
                              "torch runtime on a GPU)")
        return self

    def eval(self) -> "OnnxModel":
        return self

    def encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """frames [N, 3, H, W] in [0, 1], H and W multiples of the stride -> [C2, C3, C4, C5]."""
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ConfigError(f"vision encoder expects frames [N, 3, H, W], got {tuple(frames.shape)}")
        h, w = frames.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ConfigError(f"the ONNX vision graph takes frames whose height and width are multiples of "
                              f"{self.stride} (the Predictor pads to pad_to=32); got {h}x{w}")
        x = np.ascontiguousarray(frames.detach().cpu().float().numpy())
        return [torch.from_numpy(o) for o in self.sessions["vision"].run(None, {"frames": x})]

    def encode_text(self, texts: list[str]) -> TextFeatures:
        _check(texts)
        tok = self.tokenize(list(texts))
        tokens = np.ascontiguousarray(torch.stack([tok[k] for k in self.manifest["text_keys"]]).numpy())
        words, sentence = self.sessions["text"].run(None, {"tokens": tokens})
        pad = (tok["attention_mask"] == 0).numpy()
        words[pad] = 0.0  # as the torch encoders pad
        return TextFeatures(torch.from_numpy(words), torch.from_numpy(pad), torch.from_numpy(sentence))

    def decode(self, features: list[torch.Tensor], text: TextFeatures, B: int, T: int) -> FrameDecode:
        """features: C2..C5, each [B*T, C_l, H_l, W_l] (frame-major within a clip); text: B sentences. The graph
        decodes one sentence at a time."""
        check_decode_inputs(features, text, B, T)
        if self.manifest["clip"] and T > int(self.manifest["max_frames"]):
            raise ConfigError(f"this model mixes the frames of a clip (model.temporal_layers) and takes at most "
                              f"{self.manifest['max_frames']} frames (model.temporal_max_frames); use a window of at "
                              f"most that many frames (--window)")
        session, per_clip = self.sessions["decode"], []
        for b in range(B):
            feed = {name: np.ascontiguousarray(f[b * T:(b + 1) * T].detach().cpu().float().numpy())
                    for name, f in zip(self.manifest["levels"], features)}
            feed["words"] = np.ascontiguousarray(text.words[b:b + 1].detach().cpu().float().numpy())
            feed["pad_mask"] = np.ascontiguousarray(text.pad_mask[b:b + 1].cpu().numpy().astype(bool))
            feed["sentence"] = np.ascontiguousarray(text.sentence[b:b + 1].detach().cpu().float().numpy())
            per_clip.append(session.run(None, feed))
        outs = {name: torch.from_numpy(per_clip[0][k] if B == 1 else np.concatenate([c[k] for c in per_clip]))
                for k, name in enumerate(self.outputs)}
        return FrameDecode(**outs)


class OnnxObjectModel(OnnxModel):
    """An objects-head export (`model.head=objects`): the Predictor's video-level path (infer/track_predictor.py)
    on onnxruntime. The track descriptors and TrackInputs have no parameters and are the torch model's functions."""

    video_level = True

    def __init__(self, folder: str | Path, **kwargs):
        super().__init__(folder, **kwargs)
        self.bins, self.momentum = int(self.manifest["bins"]), float(self.manifest["momentum"])
        self.colour = bool(self.manifest.get("colour", False))  # model.ref_colour (absent from older exports)

    def decode(self, features, text, B, T):
        raise ConfigError(f"{self.folder} is an objects-head export: it decides over whole videos; run it with "
                          "the Predictor (rvos segment --runtime onnx), which tracks the objects first")

    def frame_objects(self, features: list[torch.Tensor]) -> FrameObjects:
        """C2..C5 of N frames -> their object queries (embed [N, Q, D], logits [N, Q], masks [N, Q, h, w])."""
        if len(features) != 4:
            raise ConfigError(f"frame_objects expects 4 feature levels (C2..C5), got {len(features)}")
        feed = {name: _array(f) for name, f in zip(self.manifest["levels"], features)}
        embed, logits, masks = (torch.from_numpy(o) for o in self.sessions["objects"].run(None, feed))
        return FrameObjects(embed, logits, masks, [], None)

    def describe(self, objects: FrameObjects, features: list[torch.Tensor], perm: torch.Tensor,
                 frames: torch.Tensor | None = None) -> torch.Tensor:
        """The torch model's describe, on the objects graph's outputs (frames are read only with `colour`)."""
        from rvos.models.object_model import colour_input, describe_tracks

        return describe_tracks(objects, features, perm, colour_input(self.colour, frames, f"the export {self.folder}"))

    def track_inputs(self, descriptors: list[torch.Tensor]):
        from rvos.models.referring import video_inputs

        return video_inputs(descriptors, self.bins)

    def refer(self, inputs, text: TextFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """TrackInputs of S sentences (one video's tokens, repeated) + their TextFeatures -> track logits [S, K],
        relevance logits [S, K, T']."""
        feed = {"tokens": _array(inputs.tokens), "alive": _array(inputs.alive), "frame_pos": _array(inputs.frame_pos),
                "valid": np.ascontiguousarray(inputs.valid.cpu().numpy().astype(bool)),
                "words": _array(text.words), "pad_mask": np.ascontiguousarray(text.pad_mask.cpu().numpy().astype(bool)),
                "sentence": _array(text.sentence)}
        logits, relevance = self.sessions["refer"].run(None, feed)
        return torch.from_numpy(logits), torch.from_numpy(relevance)


def _array(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().float().numpy())
