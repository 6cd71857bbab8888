"""The three graphs of an export, one per contract of RVOSModel (not one per config):

- `VisionGraph`: frames [N, 3, H, W] in [0, 1] -> C2..C5 (`RVOSModel.encode_frames`). H and W must be multiples
  of the largest stride (the predictor pads to 32).
- `DecodeGraph`: C2..C5 of T frames + one sentence's TextFeatures -> the RVOSOutput fields of `FRAME_OUTPUTS`
  the model returns (`RVOSModel.decode` with B = 1). Frames are independent unless the model mixes the frames
  of a clip (temporal layers, R2-VOS): the graph is then the clip form, and the T frames are one clip.
- `TextGraph`: the token tensors of `TextEncoder.tokenize` -> words and sentence (`TextEncoder.encode_tokens`);
  the tokenizer itself stays in Python (rvos.export.tokenizers).

The objects head (`model.head=objects`, video-level) is exported as the per-frame and per-sentence parts around
its tracker, which stays in Python (rvos.models.tracking.QueryTracker, as in the torch runtime):

- `ObjectsGraph` (export/objects_graph.py): C2..C5 of N frames -> every frame's object queries (embedding,
  objectness, mask logits), no sentence involved (`ObjectRVOSModel.frame_objects`, in an inference form that
  computes the same function with far fewer operations over the memory maps);
- `ReferGraph`: the whole video's track tokens (rvos.models.referring.TrackInputs) + S sentences' TextFeatures ->
  track logits and relevance (`ObjectRVOSModel.refer`).

The track descriptors between them have no parameters (`object_model.describe_tracks`) and are computed in torch.

Any head that fills RVOSOutput plugs in: the outputs are found by calling `decode` once, and a new per-frame
field the predictor reads is one more name in FRAME_OUTPUTS.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from rvos.export.objects_graph import ObjectsGraph  # noqa: F401  (one of the graphs; its own file)
from rvos.models.text import TextFeatures

# RVOSOutput fields an export carries, when the model fills them (None fields are left out of the graph):
# masks and query scores always; boxes (multi-query head), presence (video-level, R2-VOS) and relevance (per frame).
FRAME_OUTPUTS = ("mask_logits", "scores", "boxes", "presence", "relevance")
DECODE_INPUTS = ("c2", "c3", "c4", "c5", "words", "pad_mask", "sentence")
OBJECTS_OUTPUTS = ("embed", "logits", "masks")
REFER_INPUTS = ("tokens", "alive", "frame_pos", "valid", "words", "pad_mask", "sentence")
REFER_OUTPUTS = ("track_logits", "relevance")
LEVELS = ("c2", "c3", "c4", "c5")


def mixes_frames(model) -> bool:
    """True when decode mixes the frames of a clip (its result for a frame depends on the window's others)."""
    return getattr(model, "temporal", None) is not None or getattr(model, "r2", None) is not None


class VisionGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.vision = exportable_vision(model.vision)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.vision(frames))  # C2..C5, each [N, C_l, H/s_l, W/s_l]


class DecodeGraph(nn.Module):
    def __init__(self, model, outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.outputs = model, tuple(outputs)

    def forward(self, c2, c3, c4, c5, words, pad_mask, sentence) -> tuple[torch.Tensor, ...]:
        """c_l [T, C_l, h_l, w_l]; words [1, L, C_t]; pad_mask bool [1, L]; sentence [1, C_t]."""
        out = self.model.decode([c2, c3, c4, c5], TextFeatures(words, pad_mask, sentence), 1, c2.shape[0])
        return tuple(getattr(out, name) for name in self.outputs)


class ReferGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.referrer = model.referrer

    def forward(self, tokens, alive, frame_pos, valid, words, pad_mask, sentence) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [S, K, T, F]; alive [S, K, T]; frame_pos [S, T]; valid bool [S, T]; words [S, L, C_t]; pad_mask
        bool [S, L]; sentence [S, C_t] -> track logits [S, K], relevance logits [S, K, T]."""
        from rvos.models.referring import TrackInputs

        return self.referrer(TrackInputs(tokens, alive, frame_pos, valid), words, pad_mask, sentence)


def decode_outputs(model, features: list[torch.Tensor], text: TextFeatures) -> tuple[str, ...]:
    """The FRAME_OUTPUTS this model's decode fills (probed on one call)."""
    with torch.no_grad():
        out = model.decode(features, text, 1, features[0].shape[0])
    return tuple(name for name in FRAME_OUTPUTS if getattr(out, name, None) is not None)


class TextGraph(nn.Module):
    def __init__(self, text_encoder, keys: tuple[str, ...]):
        super().__init__()
        self.text, self.keys = text_encoder, tuple(keys)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: int64 [K, B, L], the K tensors of `keys` stacked -> words [B, L, C_t], sentence [B, C_t]."""
        feats = self.text.encode_tokens({k: tokens[i] for i, k in enumerate(self.keys)})
        return feats.words, feats.sentence


class _StaticSamePad(nn.Module):
    """TF 'SAME' convolution with the padding fixed for inputs divisible by the stride, where it does not depend
    on the size: the same result as efficientnet_lite_pytorch's Conv2dDynamicSamePadding, without the per-call
    size arithmetic that makes dynamic-shape export slow."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv
        pads = []
        for k, s, d in zip(conv.weight.shape[-2:], conv.stride, conv.dilation):
            p = max((k - 1) * d + 1 - s, 0)  # (ceil(i/s) - 1) s + (k - 1) d + 1 - i with s | i
            pads.append((p // 2, p - p // 2))
        self.pad = (pads[1][0], pads[1][1], pads[0][0], pads[0][1])  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if any(self.pad):
            x = F.pad(x, self.pad)
        return F.conv2d(x, c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


def exportable_vision(vision: nn.Module) -> nn.Module:
    """A copy of the vision encoder in a form with static padding (shares no state with the original)."""
    vision = copy.deepcopy(vision).eval()
    try:
        from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding
    except ImportError:  # pragma: no cover - a core dependency
        return vision

    def swap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, Conv2dDynamicSamePadding):
                setattr(module, name, _StaticSamePad(child))
            else:
                swap(child)

    swap(vision)
    return vision
