"""The text encoder's tokenizer, kept in Python beside the exported text graph.

An export records how to rebuild it (`tokenizer_spec`): a transformers tokenizer is saved into the export folder
(`kind: hf`), the tiny test encoder's hashed words need only their vocabulary size (`kind: hash`). `load_tokenizer`
gives back a function texts -> the same int64 tensors as the encoder's own `tokenize`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from rvos.errors import ConfigError
from rvos.models.text import TinyTextEncoder, hash_tokenize, hf_tokenize

Tokenize = Callable[[list[str]], dict[str, torch.Tensor]]


def tokenizer_spec(text_encoder, out_dir: Path) -> dict:
    """Write what the tokenizer needs under `out_dir` and return its manifest entry."""
    if isinstance(text_encoder, TinyTextEncoder):
        return {"kind": "hash", "vocab_size": int(text_encoder.vocab_size), "max_words": int(text_encoder.pos.shape[0])}
    tokenizer = getattr(text_encoder, "tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(out_dir / "tokenizer"))
        return {"kind": "hf", "path": "tokenizer", "max_length": int(getattr(text_encoder, "max_length", 512))}
    raise ConfigError(f"cannot export the tokenizer of text encoder {type(text_encoder).__name__}: expected a "
                      "transformers tokenizer in its `tokenizer` attribute, or the tiny hashed-word encoder")


def load_tokenizer(spec: dict, folder: Path) -> Tokenize:
    kind = spec.get("kind")
    if kind == "hash":
        vocab, max_words = int(spec["vocab_size"]), int(spec["max_words"])
        return lambda texts: hash_tokenize(texts, vocab, max_words)
    if kind == "hf":
        from transformers import AutoTokenizer

        path = folder / spec["path"]
        if not path.is_dir():
            raise ConfigError(f"ONNX export {folder} lacks its tokenizer folder {path}; export it again")
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        max_length = int(spec["max_length"])
        return lambda texts: hf_tokenize(tokenizer, texts, max_length)
    raise ConfigError(f"ONNX export {folder}: unknown tokenizer kind {kind!r} in manifest.json (expected hf or hash)")
