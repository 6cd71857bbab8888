"""Encoders from Hugging Face transformers: `model.vision=hf:<dir or id>` and `model.text=hf:<dir or id>`.

Both are read with `from_pretrained` from a local folder (what `save_pretrained` writes: config.json, the weights,
and for text the tokenizer files), or from the hub when the user is online; the tests never download
(HF_HUB_OFFLINE=1). With `pretrained=False` the vision model is built from its config alone (random weights).

Vision: the levels C2..C5 (strides 4, 8, 16, 32) the rest of rvos reads, their widths and strides from the
model's config.
- Models with a transformers backbone class (ConvNeXt/V2, Swin/V2, ResNet, PVTv2, FocalNet, DINOv2, BEiT, ...)
  run as that backbone; every stage is an output. Stage strides come from the config (patch size and stage count;
  PVTv2's `strides`); for a family without a rule here they are measured once at build, on a blank 224x224 image.
- Other vision models (CLIP and SigLIP vision towers, also inside a full CLIP/SigLIP checkpoint, plain ViT) run
  with `output_hidden_states`; each layer's tokens, without the leading CLS/register tokens, are put back on the
  patch grid (stride = config.patch_size), through the model's final LayerNorm.
- Multi-scale models: each level is the deepest stage at its stride (nearest stride when none matches exactly).
  Single-scale (ViT-like) models: four layers evenly spaced in depth (N/4, N/2, 3N/4, N: early layers for the fine
  levels), each patch grid resampled bilinearly to strides 4, 8, 16, 32, as ViTDet builds its simple pyramid
  from one scale (here without learnt layers, so a frozen ViT stays frozen). The resampled levels hold no more
  detail than the patch grid: masks of a stride-14 model are as coarse as its patches.
- Frames are padded (bottom/right, with the normalised mean colour 0) to a multiple of the coarsest native
  stride and each level is cropped to ceil(H / stride) cells, so a level covers the frame as EfficientNet-Lite's do.
- Normalisation: `image_mean`/`image_std` of the folder's preprocessor_config.json; without one, CLIP's for CLIP,
  0.5 for SigLIP, ImageNet's otherwise.

Text: word features = the last hidden state of every token (with the special tokens, as MiniLM's); sentence =
their mean over real tokens; CLIP/SigLIP checkpoints give their text tower. At most 64 tokens.
"""
from __future__ import annotations

import inspect
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from rvos.errors import ConfigError
from rvos.models.text import TextEncoder, TextFeatures
from rvos.models.vision import IMAGENET_MEAN, IMAGENET_STD, VisionEncoder

HF_PREFIX = "hf:"
TARGET_STRIDES = (4, 8, 16, 32)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# transformers backbones whose stages all have the patch stride (one scale, like a ViT)
SINGLE_SCALE = ("dinov2", "dinov2_with_registers", "dinov3_vit", "beit", "vitdet", "vitpose_backbone")
# backbones whose stage k (1-based) has stride patch_size * 2**(k-1): a patch embedding then 2x per stage
PATCH_PYRAMID = ("convnext", "convnextv2", "dinov3_convnext", "swin", "swinv2", "maskformer-swin", "focalnet")


def is_hf(name: str) -> bool:
    return isinstance(name, str) and name.startswith(HF_PREFIX)


def hf_source(name: str) -> str:
    """'hf:~/models/roberta-base' -> '/home/u/models/roberta-base'; 'hf:FacebookAI/roberta-base' unchanged."""
    src = name[len(HF_PREFIX):].strip()
    if not src:
        raise ConfigError(f"{name!r}: give a folder or a hub id after 'hf:', e.g. hf:/models/convnext-tiny-224")
    return os.path.expanduser(src)


@contextmanager
def _quiet():
    """transformers' load reports and progress bars off while rvos loads a model (errors still raise)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()


def _where(source: str) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    return (f"{source!r} is neither a folder with a transformers config.json nor a hub id that could be read"
            + (" (HF_HUB_OFFLINE is set: only models already in the hub cache can be read)" if offline else ""))


def load_config(source: str, revision: Optional[str], what: str):
    """The transformers config of `source`; ConfigError saying what was expected when it cannot be read."""
    from transformers import AutoConfig

    try:
        with _quiet():
            return AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"model.{what}=hf:{source}: {_where(source)}: {type(e).__name__}: {e}") from None


def resolved_revision(source: str, revision: Optional[str]) -> Optional[str]:
    """The hub commit a hub id resolved to (from the cache path), else the revision asked for (None for a folder)."""
    if os.path.isdir(source):
        return revision
    try:
        from transformers.utils import cached_file
        from transformers.utils.hub import extract_commit_hash

        path = cached_file(source, "config.json", revision=revision, _raise_exceptions_for_missing_entries=False)
        return extract_commit_hash(path, None) or revision
    except (OSError, ValueError):
        return revision


def _sub_config(config, part: str):
    """A CLIP/SigLIP-style checkpoint holds both towers: its `vision_config` / `text_config`."""
    sub = getattr(config, f"{part}_config", None)
    return sub if sub is not None and hasattr(sub, "model_type") else config


def _model_class(config, what: str):
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(config)]
    except KeyError:
        raise ConfigError(f"model.{what}: transformers has no base model class for model_type "
                          f"{config.model_type!r}") from None


def _from_pretrained(cls, source: str, revision: Optional[str], config, what: str):
    """cls.from_pretrained; weights the folder lacks (e.g. the LayerNorms a backbone adds on its stages) are
    initialised from a fixed seed, so a frozen encoder is the same at every load (its weights hash too)."""
    try:
        with _quiet(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return cls.from_pretrained(source, config=config, revision=revision)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.{what}=hf:{source}: could not read the weights ({type(e).__name__}: {e}); "
                          "expected the folder save_pretrained writes (config.json + model.safetensors)") from None


def _normalisation(source: str, revision: Optional[str], config) -> tuple[tuple, tuple]:
    """(mean, std) for frames in [0, 1]: preprocessor_config.json when there is one, else by model family."""
    path = None
    try:
        from transformers.utils import cached_file

        path = cached_file(source, "preprocessor_config.json", revision=revision,
                           _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError):
        path = None
    if path:
        try:
            pre = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"not a readable preprocessor config: {path} ({e})") from None
        if pre.get("do_normalize") is False:
            return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        if "image_mean" in pre and "image_std" in pre:
            mean, std = (v if isinstance(v, (list, tuple)) else [v] * 3 for v in (pre["image_mean"], pre["image_std"]))
            if len(mean) != 3 or len(std) != 3:
                raise ConfigError(f"{path}: image_mean and image_std need 3 values (RGB), got {mean}, {std}")
            return tuple(float(m) for m in mean), tuple(float(s) for s in std)
    kind = config.model_type
    if kind.startswith("clip"):
        return CLIP_MEAN, CLIP_STD
    if kind.startswith("siglip"):
        return (0.5,) * 3, (0.5,) * 3
    return IMAGENET_MEAN, IMAGENET_STD


def _patch(config) -> int:
    p = getattr(config, "patch_size", None)
    if isinstance(p, (list, tuple)):
        if len(set(p)) != 1:
            raise ConfigError(f"non-square patches {p} of model_type {config.model_type!r} are not supported")
        p = p[0]
    if not isinstance(p, int) or p < 1:
        raise ConfigError(f"model_type {config.model_type!r}: config has no patch_size to place its tokens on a grid")
    return p


def config_stage_strides(config, stages: list[str]) -> Optional[list[int]]:
    """Stride of each backbone stage ('stage1'..'stageN') from the config, or None for a family without a rule."""
    kind = config.model_type
    k = [int(s[len("stage"):]) for s in stages]
    if kind in SINGLE_SCALE:
        return [_patch(config)] * len(k)
    if kind in PATCH_PYRAMID:
        return [_patch(config) * 2 ** (i - 1) for i in k]
    if kind in ("resnet", "rt_detr_resnet"):  # stem: conv stride 2 + max pool stride 2; then 2x per stage
        first = 2 if getattr(config, "downsample_in_first_stage", False) else 1
        return [4 * first * 2 ** (i - 1) for i in k]
    if kind == "pvt_v2":
        cum = [math.prod(config.strides[:i]) for i in range(1, len(config.strides) + 1)]
        return [cum[i - 1] for i in k]
    return None


def pick_levels(strides: list[int]) -> list[int]:
    """Indices of the outputs used as C2..C5: single-scale -> 4 layers evenly spaced in depth; multi-scale -> per
    target stride the deepest output at that stride (the nearest stride in log scale when none matches)."""
    n = len(strides)
    if len(set(strides)) == 1:
        return [max(0, min(n - 1, round(n * (j + 1) / 4) - 1)) for j in range(4)]
    out = []
    for s in TARGET_STRIDES:
        dist = [abs(math.log2(st / s)) for st in strides]
        best = min(dist)
        out.append(max(i for i, d in enumerate(dist) if d == best))
    return out


def to_level(x: torch.Tensor, native: int, target: int, height: int, width: int) -> torch.Tensor:
    """x [N, C, Hp/native, Wp/native] (a grid covering the padded frame) -> [N, C, ceil(H/target), ceil(W/target)],
    bilinear when the strides differ; the cells beyond the frame are cropped."""
    h, w = -(-height // target), -(-width // target)
    if native != target:
        size = (-(-x.shape[-2] * native // target), -(-x.shape[-1] * native // target))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x[..., :h, :w]


class HFVisionEncoder(VisionEncoder):
    """Any transformers vision model as C2..C5 (see the module docstring). `channels`: the widths of the chosen
    outputs (from the config); `strides`: (4, 8, 16, 32); `native_strides`: the strides the model computes them at."""

    def __init__(self, name: str, revision: Optional[str] = None, pretrained: bool = True, frozen: bool = True):
        from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING

        source = hf_source(name)
        full = load_config(source, revision, "vision")
        config = _sub_config(full, "vision")
        mean, std = _normalisation(source, revision, config)
        super().__init__(frozen, mean, std)
        self.name, self.source = name, source
        self.revision = resolved_revision(source, revision) if pretrained else None
        backbone = MODEL_FOR_BACKBONE_MAPPING.get(type(config), None) if config is full else None
        if backbone is not None and hasattr(config, "stage_names"):
            self.mode = "backbone"
            stages = [s for s in config.stage_names if s.startswith("stage")]
            config.out_features = stages
            cls = backbone
        else:
            if getattr(config, "patch_size", None) is None:
                raise ConfigError(f"model.vision={name}: model_type {config.model_type!r} is not a vision model rvos "
                                  "can read (no transformers backbone class, no patch_size)")
            self.mode = "tokens"
            cls = _model_class(config, "vision")
        self.model = _from_pretrained(cls, source, revision, config, "vision") if pretrained else cls(config)
        if self.mode == "backbone":
            widths = list(self.model.channels)
            strides = config_stage_strides(config, stages) or self._measure_strides()
        else:
            layers = getattr(config, "num_hidden_layers", None)
            if not layers:
                raise ConfigError(f"model.vision={name}: model_type {config.model_type!r} has neither a transformers "
                                  "backbone class nor num_hidden_layers: rvos cannot read levels from it")
            widths, strides = [config.hidden_size] * layers, [_patch(config)] * layers
            # the model's final LayerNorm, by name (not registered twice in the state dict)
            self._norm = next((a for a in ("post_layernorm", "layernorm", "norm")
                               if isinstance(getattr(self.model, a, None), nn.LayerNorm)), None)
            self._interp = "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters
        self._picked = pick_levels(strides)
        self.native_strides = tuple(strides[i] for i in self._picked)
        self.channels = tuple(int(widths[i]) for i in self._picked)
        self._pad = max(strides)
        if frozen:
            self.freeze()

    @torch.no_grad()
    def _measure_strides(self) -> list[int]:
        """Strides of every backbone output, measured on one blank 224x224 frame (families without a rule)."""
        was = self.model.training
        self.model.eval()
        maps = self.model(pixel_values=torch.zeros(1, 3, 224, 224)).feature_maps
        self.model.train(was)
        return [max(1, round(224 / f.shape[-1])) for f in maps]

    def _outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every candidate output as a grid [N, C, Hp/s, Wp/s]."""
        if self.mode == "backbone":
            return list(self.model(pixel_values=x).feature_maps)
        kw = {"interpolate_pos_encoding": True} if self._interp else {}
        hidden = self.model(pixel_values=x, output_hidden_states=True, **kw).hidden_states[1:]  # per layer [N, L, C]
        p = self.native_strides[0]
        gh, gw = x.shape[-2] // p, x.shape[-1] // p
        norm = getattr(self.model, self._norm) if self._norm else nn.Identity()
        grids = {}
        for i in set(self._picked):
            tokens = norm(hidden[i][:, hidden[i].shape[1] - gh * gw:])  # drop CLS / register tokens
            grids[i] = tokens.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)  # [N, C, gh, gw]
        return [grids.get(i) for i in range(len(hidden))]

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self._pad, 0, -h % self._pad))  # [N, 3, Hp, Wp], zero = the mean colour
        outs = self._outputs(x)
        feats = []
        for i, native, target in zip(self._picked, self.native_strides, TARGET_STRIDES):
            f = outs[i]
            if tuple(f.shape[-2:]) != (x.shape[-2] // native, x.shape[-1] // native):
                raise ConfigError(f"model.vision={self.name}: output {i} is {tuple(f.shape[-2:])} for a "
                                  f"{tuple(x.shape[-2:])} input, not stride {native} as its config says")
            feats.append(to_level(f, native, target, h, w))
        return feats


class HFTextEncoder(TextEncoder):
    """Any transformers text encoder (RoBERTa, BERT, CLIP text, ...) with its own tokenizer."""

    def __init__(self, name: str, revision: Optional[str] = None, frozen: bool = True, max_length: int = 64,
                 cache_size: int = 4096):
        super().__init__(frozen, cache_size)
        from transformers import AutoTokenizer

        source = hf_source(name)
        config = _sub_config(load_config(source, revision, "text"), "text")
        if not getattr(config, "vocab_size", None):
            raise ConfigError(f"model.text={name}: model_type {config.model_type!r} is not a text encoder (its config "
                              "has no vocab_size)")
        self.name, self.source, self.revision = name, source, resolved_revision(source, revision)
        self.model = _from_pretrained(_model_class(config, "text"), source, revision, config, "text")
        try:
            with _quiet():
                self.tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(f"model.text={name}: no tokenizer could be read from {source!r} "
                              f"({type(e).__name__}: {e}); save it with tokenizer.save_pretrained there") from None
        if len(self.tokenizer) <= len(set(self.tokenizer.all_special_ids)):  # transformers builds an empty one
            raise ConfigError(f"model.text={name}: no tokenizer could be read from {source!r} (its vocabulary holds "
                              "only special tokens); save it with tokenizer.save_pretrained there")
        self.dim = int(config.hidden_size)
        limits = [max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length]
        if getattr(config, "max_position_embeddings", None):
            limits.append(config.max_position_embeddings - 2)  # RoBERTa offsets positions by the padding index + 1
        self.max_length = int(min(limits))
        if frozen:
            self.freeze()

    def _encode(self, texts: list[str]) -> TextFeatures:
        device = next(self.model.parameters()).device
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        ids, real = tok["input_ids"].to(device), tok["attention_mask"].to(device).bool()
        words = self.model(input_ids=ids, attention_mask=real.long()).last_hidden_state  # [B, L, C]
        words = words.masked_fill(~real[..., None], 0.0)
        sentence = words.sum(1) / real.sum(1, keepdim=True).clamp(min=1)
        return TextFeatures(words, ~real, sentence)
