"""ModelConfig: everything `build_model` needs, saved in every checkpoint and run folder."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Optional

from rvos.errors import ConfigError

VISIONS = ("efficientnet_lite0", "efficientnet_lite2", "tiny")
TEXTS = ("minilm", "tiny")
HEADS = ("single", "multi", "objects")


@dataclass
class ModelConfig:
    vision: str = "efficientnet_lite0"  # or "hf:<folder or hub id>": a transformers vision model (models/hf.py)
    vision_pretrained: bool = True
    vision_frozen: bool = True
    vision_revision: Optional[str] = None  # hub revision (branch, tag or commit) of an hf: vision model
    text: str = "minilm"  # or "hf:<folder or hub id>": a transformers text encoder (models/hf.py)
    text_frozen: bool = True
    text_revision: Optional[str] = None  # hub revision of an hf: text encoder
    text_cache_size: int = 4096  # sentences kept by a frozen text encoder
    dim: int = 128  # width D of the fusion (C5 + words), kept small for CPU speed
    num_heads: int = 4  # attention heads of L2V / V2L and the query decoder
    fusion_stride: int = 32  # 32: fuse language with C5 (the paper); 16: with C5 upsampled + C4 (models/fusion.py)
    fpn_dims: tuple[int, int, int] = (96, 64, 32)  # FPN widths at strides 16, 8, 4 (stride 32 uses `dim`)
    fpn_language: bool = True  # FiLM every FPN level with the sentence (see models/fpn.py); False = eq. 4 as written
    mask_dim: int = 16  # channels of the mask feature the dynamic filters are applied to (CondInst: 8)
    dyn_hidden: int = 16  # hidden width of the 3-layer dynamic 1x1-conv MLP
    dyn_layers: int = 3
    head: str = "single"  # "single": SimRVOS (eq. 3-5); "multi": ReferFormer-style N queries; "objects": the
    # object-centric model (models/object_model.py: objects per frame, tracks, a referrer over tracks; method objects)
    num_queries: int = 5
    dec_layers: int = 2  # query decoder layers (multi head)
    rel_coords: bool = True  # multi head: relative coordinates to the query's box centre as 2 extra channels
    blcl: bool = False  # WRVOS BLCL branch (models/blcl.py): contrastive feature H, masks read F_ENH instead of F_FPN
    blcl_hidden: int = 32  # width of the BLCL branch's convolutions
    r2: bool = False  # R2-VOS parts: early grounding, text reconstruction, consensus (presence) head
    r2_kernels: int = 8  # K dynamic kernels of early grounding (eq. 6)
    r2_rec_layers: int = 1  # transformer decoder layers of the text reconstruction
    r2_consensus: str = "concat"  # consensus head input: "concat" [e; e'] (the paper) or "match" (+ e*e', |e-e'|)
    r2_reconstruct_from: str = "early"  # what e' is read from: "early" (f_early, the paper), "visual" (gated
    # language-free visual tokens) or "visual_attn" (the gate as attention bias), see models/text_reconstruction.py
    r2_text_fusion: str = "add"  # how e' is fused into e for the queries: "add" (LN(e + W e')) or "concat"
    temporal_layers: int = 0  # transformer layers over each clip's T x h x w fused tokens (models/temporal.py); 0 = off
    temporal_max_frames: int = 32  # longest clip / predictor window the frame-index embedding covers
    moment: bool = False  # TGL moment head (models/moment.py): per-frame relevance logits `RVOSOutput.relevance`
    moment_hidden: int = 64
    moment_layers: int = 2  # temporal 1-D convolutions over the frames of a clip
    propagation: bool = False  # TGL language-agnostic mask propagation (models/propagation.py), used by MDP
    prop_dim: int = 32  # width of the propagation's visual embedding (stride 8)
    prop_memory: int = 4  # referred frames each propagated frame reads at inference (nearest in time)
    prop_sigma: float = 3.0  # spatial prior of the memory read, in stride-8 cells (x (1 + frames apart)); 0 = off
    # head="objects" (models/objects.py, tracking.py, referring.py); dim, num_heads and fpn_dims are shared
    obj_queries: int = 8  # object queries per frame = track slots (the most objects a frame can hold)
    obj_layers: int = 3  # object decoder layers (masked attention, strides 32, 16, 8 in turn)
    obj_mask_dim: int = 32  # channels of the stride-4 mask feature
    ref_layers: int = 3  # referrer layers (time, objects, words, FFN)
    ref_bins: int = 12  # the referrer sees at most this many time steps (longer videos are averaged into bins)
    ref_dropout: float = 0.0  # dropout in the referrer's attention and FFN (phase 2 overfits the track cache)
    ref_threshold: float = 0.5  # a track is selected (and the object present) when sigmoid(track logit) >= this
    track_momentum: float = 0.8  # memory momentum of the query tracker
    ref_colour: bool = False  # the track descriptors also carry the frame's mean RGB under each mask (3 channels)
    selection: bool = False  # WSRVOS bidirectional feature selection before the fusion (models/selection.py)
    selection_topk_visual: int = 10  # visual tokens kept per frame (the public code: 10)
    selection_topk_words: int = 10  # words kept per sentence (the public code: 10)
    expression_scorer: bool = False  # WSRVOS: query scores = match of mask-pooled visual tokens with the sentence
    expression_pool: str = "sigmoid"  # how a query's mask pools the tokens: "sigmoid" (soft mask) | "softmax" (spatial)

    def __post_init__(self) -> None:
        for name, allowed in (("vision", VISIONS), ("text", TEXTS), ("head", HEADS)):
            value = getattr(self, name)
            if name != "head" and isinstance(value, str) and value.startswith("hf:"):
                if not value[3:].strip():
                    raise ConfigError(f"model.{name}={value!r}: give a folder or a hub id after 'hf:'")
            elif value not in allowed:
                raise ConfigError(f"model.{name}={value!r}; expected one of {allowed}"
                                  + ("" if name == "head" else " or hf:<folder or hub id>"))
        self.fpn_dims = tuple(int(d) for d in self.fpn_dims)
        if len(self.fpn_dims) != 3:
            raise ConfigError(f"model.fpn_dims needs 3 widths (strides 16, 8, 4), got {self.fpn_dims}")
        if self.dim % 8:
            raise ConfigError(f"model.dim={self.dim} must be a multiple of 8 (GroupNorm of 8 groups)")
        if self.dim % self.num_heads:
            raise ConfigError(f"model.dim={self.dim} must be divisible by model.num_heads={self.num_heads}")
        if self.fusion_stride not in (16, 32):
            raise ConfigError(f"model.fusion_stride must be 16 or 32, got {self.fusion_stride}")
        if self.r2_consensus not in ("concat", "match"):
            raise ConfigError(f"model.r2_consensus must be 'concat' or 'match', got {self.r2_consensus!r}")
        if self.r2_reconstruct_from not in ("early", "visual", "visual_attn"):
            raise ConfigError(f"model.r2_reconstruct_from must be 'early', 'visual' or 'visual_attn', got "
                              f"{self.r2_reconstruct_from!r}")
        if self.r2_text_fusion not in ("add", "concat"):
            raise ConfigError(f"model.r2_text_fusion must be 'add' or 'concat', got {self.r2_text_fusion!r}")
        if self.temporal_layers < 0 or self.temporal_max_frames < 1:
            raise ConfigError(f"model.temporal_layers must be >= 0 and model.temporal_max_frames >= 1, got "
                              f"{self.temporal_layers}, {self.temporal_max_frames}")
        if self.moment_hidden < 1 or self.moment_layers < 0 or self.prop_dim < 1 or self.prop_memory < 1 \
                or self.prop_sigma < 0:
            raise ConfigError("model.moment_hidden, prop_dim and prop_memory must be >= 1, model.moment_layers and "
                              "prop_sigma >= 0")
        if self.head == "objects" and (self.moment or self.propagation):
            raise ConfigError("model.moment and model.propagation (TGL) are parts of the single/multi heads' RVOSModel; "
                              "head='objects' has neither")
        if min(self.obj_queries, self.obj_layers, self.obj_mask_dim, self.ref_layers, self.ref_bins) < 1 or \
                not 0.0 <= self.track_momentum < 1.0 or not 0.0 <= self.ref_dropout < 1.0 or \
                not 0.0 < self.ref_threshold < 1.0:
            raise ConfigError("model.obj_queries, obj_layers, obj_mask_dim, ref_layers and ref_bins must be >= 1, "
                              "model.track_momentum and model.ref_dropout in [0, 1), model.ref_threshold in (0, 1)")
        if self.ref_colour and self.head != "objects":
            raise ConfigError("model.ref_colour is a part of head='objects' (the track descriptors); "
                              f"model.head={self.head!r} has no tracks")
        if self.expression_pool not in ("sigmoid", "softmax"):
            raise ConfigError(f"model.expression_pool must be 'sigmoid' or 'softmax', got {self.expression_pool!r}")
        if self.selection_topk_visual < 1 or self.selection_topk_words < 1:
            raise ConfigError(f"model.selection_topk_visual and selection_topk_words must be >= 1, got "
                              f"{self.selection_topk_visual}, {self.selection_topk_words}")
        if self.dyn_layers < 1 or self.num_queries < 1 or self.dec_layers < 1:
            raise ConfigError("model.dyn_layers, num_queries and dec_layers must be >= 1")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fpn_dims"] = list(self.fpn_dims)  # plain YAML
        return d
