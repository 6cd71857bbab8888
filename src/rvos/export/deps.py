"""The optional ONNX extra: import onnx / onnxscript / onnxruntime, or say how to install them."""
from __future__ import annotations

import importlib

from rvos.errors import ConfigError

# the versions the `onnx` extra of pyproject.toml pins (what the tests and BENCHMARKS.md ran)
PINNED = {"onnx": "1.23.1", "onnxscript": "0.7.2", "onnxruntime": "1.30.0"}
EXPORT = ("onnx", "onnxscript", "onnxruntime")  # torch's ONNX exporter needs onnxscript; export verifies on onnxruntime
RUNTIME = ("onnxruntime",)


def require(packages: tuple[str, ...] = RUNTIME, what: str = "the onnx runtime") -> dict:
    """{name: module} of `packages`; ConfigError saying how to install the extra when one is missing."""
    out, missing = {}, []
    for name in packages:
        try:
            out[name] = importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        pins = " ".join(f"{n}=={PINNED[n]}" for n in EXPORT)
        raise ConfigError(f"{what} needs the optional package(s) {', '.join(missing)}, which are not installed: "
                          f"pip install 'rvos[onnx]' (or: pip install {pins})")
    return out
