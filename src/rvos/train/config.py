"""Training configs: dataclasses grouped by concern, read from YAML with dotted `key=value` overrides.

Every value is type-checked against its dataclass field; an unknown key is a ConfigError naming its dotted path.
The resolved config (`to_dict`) is saved as YAML next to the run and inside every checkpoint.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from rvos.data.clips import ClipConfig
from rvos.errors import ConfigError


def model_config_class() -> type:
    from rvos.models.config import ModelConfig

    return ModelConfig


@dataclass
class DataConfig:
    root: str = ""  # dataset folder
    layout: str = "auto"  # reader layout (rvos.data.readers.open_dataset)
    train_split: Optional[str] = "train"
    val_split: Optional[str] = None
    regime: str = "full"  # supervision regime (rvos.data.regimes)
    regime_seed: int = 0
    negative_ratio: float = 0.0  # R2-VOS: sampled negative expressions (from unrelated videos) per positive one
    negative_seed: int = 0
    # which sampled pairs count as negatives: "category" (R2-VOS: no object of the sentence's categories in the video)
    # or "attributes" (the synthetic benchmark's stored queries: the sentence matches no object there; certainly false)
    negative_rule: str = "category"
    # More synthetic training videos: generated once (seed extra_synth_seed, the default video size) next to
    # data.root as <root>-extra<N>-seed<S>[-f<F>], and their train split joins the training records (ids prefixed).
    extra_synth: int = 0
    extra_synth_seed: int = 1
    extra_synth_frames: int = 0  # frames per extra video (0: the generator's default, 24; >= 8): cheaper to encode
    extra_synth_dir: str = ""  # where those videos are generated instead (e.g. when data.root is read-only)
    repeat: int = 1  # the dataset's own training videos appear this many times an epoch (weight against extra_synth)
    augment: str = ""  # WSRVOS: the `rvos augment` JSONL cache whose positives / hard negatives the expressions get
    augment_threshold: Optional[float] = None  # re-filter its positives by score (None: the file's kept flags)
    clip: ClipConfig = field(default_factory=ClipConfig)

    def __post_init__(self) -> None:  # checked here, so a misspelt rule fails even when no negatives are sampled
        if self.negative_rule not in ("category", "attributes"):
            raise ConfigError(f"data.negative_rule must be 'category' or 'attributes', got {self.negative_rule!r}")


@dataclass
class OptimConfig:
    lr: float = 5e-5  # AdamW, everything but the visual backbone
    backbone_lr: float = 2.5e-5  # the encoders when they are trained (model.vision_frozen / text_frozen false)
    text_lr: Optional[float] = None  # the text encoder's own learning rate; None = backbone_lr
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    decay_steps: list[int] = field(default_factory=list)  # step decay: lr *= gamma at each of these steps
    gamma: float = 0.1
    grad_clip: float = 0.1  # max global gradient norm; 0 = off


@dataclass
class LoopConfig:
    steps: int = 0  # total optimizer steps; 0 = use epochs
    epochs: int = 1
    batch_size: int = 2  # clips per process
    checkpoint_every: int = 500  # steps; a killed run loses at most this many
    eval_every: int = 0  # steps; 0 = only at the end (when an eval function is given)
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (bf16 where supported, else fp16, on GPU only) | bf16 | fp16 | off
    feature_cache: str = "off"  # off | memory | disk: precompute frozen-backbone features (see feature_cache.py)
    feature_cache_dir: str = ""  # disk cache folder (default OUT/features); runs on the same videos can share one
    workers: int = 0
    progress: bool = True
    plot: bool = True  # redraw curves.png from metrics.jsonl at the end


@dataclass
class MethodConfig:
    name: str = "simrvos"  # a key of rvos.train.method.METHODS
    params: dict = field(default_factory=dict)  # fields of that method's config


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = None  # rvos.models.config.ModelConfig (filled in by from_dict)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)


def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    if cls is TrainConfig:
        hints["model"] = model_config_class()
    return hints


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """`value` checked/converted to type `tp`; ConfigError naming `where` when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    bad = ConfigError(f"config key {where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in (a for a in args if a is not type(None)):
            try:
                return _coerce(a, value, where)
            except ConfigError:
                pass
        raise bad
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise bad
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise bad
    if tp is str:
        if isinstance(value, bool):  # YAML 1.1 reads off/on as booleans (loop.amp=off, loop.feature_cache=off)
            return "on" if value else "off"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise bad
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"config key {where}: expected {len(args)} values, got {value!r}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise bad
        return dict(value)
    return value


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """An instance of dataclass `cls` from a (partial) dict; missing keys keep their defaults."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or '<root>'}: expected a mapping, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {', '.join(names)}")
        kwargs[key] = _coerce(hints[key], value, path)
    if cls is TrainConfig and "model" not in kwargs:
        kwargs["model"] = model_config_class()()
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Plain dicts/lists/scalars (YAML- and weights_only-safe) of a config."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set dotted keys (`optim.lr=1e-4`) in a config dict; values are parsed as YAML. Unknown keys are caught
    by `from_dict` (with the full dotted path)."""
    data = to_dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value (e.g. optim.lr=1e-4)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {key!r}: {'.'.join(parts[:i + 1])} is a value, not a section")
            node = nxt
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return data


PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def resolve_config_path(name: str | Path) -> Path:
    """A YAML path, or the name of a packaged config (`simrvos_synth` -> rvos/configs/simrvos_synth.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml") and path.parent == Path(".") and packaged.is_file():
        return packaged
    names = sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))
    raise ConfigError(f"missing config file: {name} (a YAML path, or one of the packaged configs {names})")


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> TrainConfig:
    """TrainConfig from a YAML file (or the defaults) with dotted overrides applied."""
    data: dict = {}
    if path is not None:
        path = resolve_config_path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file is not valid YAML: {path} ({e})") from None
    cfg = from_dict(TrainConfig, apply_overrides(data, overrides or []))
    cfg.data.clip.validate()
    return cfg


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from rvos.train.checkpoint import atomic_write_bytes

    atomic_write_bytes(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
