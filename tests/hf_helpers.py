"""Tiny random transformers models of every family `model.vision=hf:` / `model.text=hf:` is tested with, built
with `AutoModel.from_config` (seeded) and written with `save_pretrained` (+ a small word-level tokenizer for the
text models), so the tests read them by path and never download anything."""
from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("[PAD] [UNK] [CLS] [SEP] the a an red blue green car camel dog cat on left right of and square circle bar "
         "shapes both flying big small moving").split()


def vision_configs() -> dict:
    from transformers import CLIPConfig, CLIPVisionConfig, ConvNextConfig, Dinov2Config, SiglipVisionConfig, SwinConfig

    vit = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2)
    return {
        "convnext": ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
        "swin": SwinConfig(image_size=64, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4),
        "dinov2": Dinov2Config(image_size=56, patch_size=14, **vit),
        "clip_vision": CLIPVisionConfig(image_size=32, patch_size=8, **vit),
        "siglip_vision": SiglipVisionConfig(image_size=32, patch_size=8, **vit),
        "clip_full": CLIPConfig(vision_config=dict(image_size=32, patch_size=8, **vit), text_config=dict(_text_kw(77), bos_token_id=2, eos_token_id=3, pad_token_id=0)),
    }


def _text_kw(max_pos: int) -> dict:
    return dict(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=max_pos)


def text_configs() -> dict:
    from transformers import BertConfig, CLIPTextConfig, RobertaConfig

    return {
        "roberta": RobertaConfig(pad_token_id=0, **_text_kw(80)),
        "bert": BertConfig(pad_token_id=0, **_text_kw(80)),
        "clip_text": CLIPTextConfig(pad_token_id=0, bos_token_id=2, eos_token_id=3, **_text_kw(77)),
    }


def save_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                            sep_token="[SEP]", model_max_length=64).save_pretrained(folder)


def save_tiny(config, folder: Path, seed: int = 0, tokenizer: bool = False) -> Path:
    """AutoModel.from_config(config) with seeded random weights, saved to `folder`; returns the folder."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(folder)
    if tokenizer:
        save_tokenizer(folder)
    return folder


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def offline_hub(monkeypatch, root: Path, repo_id: str, config, **kw) -> str:
    """A hub cache under `root` holding `repo_id` at HUB_COMMIT (as a download leaves it) and made the cache
    transformers reads: the offline path of `hf:<hub id>`. Returns the commit."""
    import huggingface_hub.constants as hub_constants

    repo = root / ("models--" + repo_id.replace("/", "--"))
    save_tiny(config, repo / "snapshots" / HUB_COMMIT, **kw)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HUB_COMMIT)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(root))
    return HUB_COMMIT
