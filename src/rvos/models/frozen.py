"""The frozen/trainable switch the vision and text encoders share."""
from __future__ import annotations

from torch import nn


class FreezableEncoder(nn.Module):
    """A frozen encoder has no gradients and stays in eval mode whatever `train()` asks (BatchNorm running
    statistics and dropout stay as pretrained)."""

    def __init__(self, frozen: bool):
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FreezableEncoder":
        return super().train(mode and not self.frozen)
