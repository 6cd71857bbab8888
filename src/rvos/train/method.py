"""Which training strategy (rvos.methods) a config names: an explicit table, no registry, no class paths."""
from __future__ import annotations

import dataclasses
import importlib

from rvos.errors import ConfigError

# name -> (module, method class, its config dataclass)
METHODS: dict[str, tuple[str, str, str]] = {
    "simrvos": ("rvos.methods.simrvos", "SimRVOS", "SimRVOSConfig"),
    "wrvos": ("rvos.methods.wrvos", "WRVOS", "WRVOSConfig"),
    "r2vos": ("rvos.methods.r2vos", "R2VOS", "R2VOSConfig"),
    "tgl": ("rvos.methods.tgl", "TGL", "TGLConfig"),
    "wsrvos": ("rvos.methods.wsrvos", "WSRVOS", "WSRVOSConfig"),
    "objects": ("rvos.methods.objects", "Objects", "ObjectsConfig"),  # phase 1; train_objects runs both phases
}


def build_method(name: str, model, params: dict):
    """`Method(model, MethodConfig(**params))` for the method called `name`."""
    if name not in METHODS:
        raise ConfigError(f"unknown method.name {name!r}; valid: {', '.join(METHODS)}")
    module_name, cls_name, cfg_name = METHODS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"method {name!r} is not available in this installation ({e})") from None
    cfg_cls = getattr(module, cfg_name)
    from rvos.train.config import from_dict

    cfg = from_dict(cfg_cls, dict(params), "method.params") if dataclasses.is_dataclass(cfg_cls) else cfg_cls(**params)
    return getattr(module, cls_name)(model, cfg)
