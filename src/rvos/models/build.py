"""build_model(cfg): the one place that wires encoders, fusion, FPN and head into an RVOSModel."""
from __future__ import annotations

from rvos.models.blcl import BLCLBranch
from rvos.models.config import ModelConfig
from rvos.models.consensus import ConsensusHead
from rvos.models.early_grounding import EarlyGrounding
from rvos.models.expression_scorer import ExpressionScorer
from rvos.models.fpn import LanguageFPN
from rvos.models.fusion import CrossModalFusion
from rvos.models.heads import MultiQueryHead, SingleHead
from rvos.models.moment import MomentHead
from rvos.models.object_model import POOLED_LEVELS, ObjectRVOSModel
from rvos.models.objects import ObjectDecoder
from rvos.models.propagation import MaskPropagation
from rvos.models.referring import COLOUR, GEOMETRY, MOTION, TrackReferrer
from rvos.models.rvos_model import R2Parts, RVOSModel
from rvos.models.selection import BidirectionalSelection
from rvos.models.temporal import TemporalContext
from rvos.models.text import build_text
from rvos.models.text_reconstruction import ResponseGate, TextFusion, TextReconstruction
from rvos.models.vision import build_vision


def build_model(cfg: ModelConfig | None = None) -> RVOSModel | ObjectRVOSModel:
    cfg = cfg or ModelConfig()
    vision = build_vision(cfg.vision, pretrained=cfg.vision_pretrained, frozen=cfg.vision_frozen,
                          revision=cfg.vision_revision)
    text = build_text(cfg.text, frozen=cfg.text_frozen, cache_size=cfg.text_cache_size, revision=cfg.text_revision)
    if cfg.head == "objects":
        return build_object_model(cfg, vision, text)
    c2, c3, c4, c5 = vision.channels
    selection = BidirectionalSelection(cfg.dim, cfg.selection_topk_visual, cfg.selection_topk_words) \
        if cfg.selection else None
    fusion = CrossModalFusion(c5, text.dim, cfg.dim, cfg.num_heads, c4 if cfg.fusion_stride == 16 else 0, selection)
    fpn = LanguageFPN((c4, c3, c2), cfg.dim, cfg.fpn_dims, cfg.mask_dim, cfg.dim if cfg.fpn_language else 0)
    if cfg.head == "single":
        head = SingleHead(cfg.dim, cfg.mask_dim, cfg.dyn_hidden, cfg.dyn_layers)
    else:
        head = MultiQueryHead(cfg.dim, cfg.mask_dim, cfg.num_queries, cfg.dec_layers, cfg.num_heads,
                              cfg.dyn_hidden, cfg.dyn_layers, cfg.rel_coords)
    blcl = BLCLBranch(cfg.mask_dim, cfg.dim, cfg.blcl_hidden) if cfg.blcl else None
    r2 = None
    if cfg.r2:
        r2 = R2Parts(grounding=EarlyGrounding(cfg.dim, cfg.num_heads, cfg.r2_kernels),
                     reconstruction=TextReconstruction(cfg.dim, cfg.num_heads, cfg.r2_rec_layers),
                     text_fusion=TextFusion(cfg.dim, cfg.r2_text_fusion), consensus=ConsensusHead(cfg.dim, features=cfg.r2_consensus),
                     rec_gate=None if cfg.r2_reconstruct_from == "early" else
                     ResponseGate(cfg.r2_kernels, "bias" if cfg.r2_reconstruct_from == "visual_attn" else "scale"))
    temporal = None
    if cfg.temporal_layers:
        temporal = TemporalContext(cfg.dim, cfg.num_heads, cfg.temporal_layers, cfg.temporal_max_frames)
    moment = MomentHead(cfg.dim, cfg.moment_hidden, cfg.moment_layers) if cfg.moment else None
    propagation = None
    if cfg.propagation:
        propagation = MaskPropagation((c2, c3, c4), cfg.prop_dim, memory=cfg.prop_memory, sigma=cfg.prop_sigma)
    scorer = ExpressionScorer(cfg.dim, pool=cfg.expression_pool) if cfg.expression_scorer else None
    return RVOSModel(vision=vision, text=text, fusion=fusion, fpn=fpn, head=head, blcl=blcl, r2=r2,
                     temporal=temporal, moment=moment, propagation=propagation, expression_scorer=scorer,
                     config=cfg)


def build_object_model(cfg: ModelConfig, vision, text) -> ObjectRVOSModel:
    """head="objects": the language-free object decoder and the track referrer (models/object_model.py)."""
    objects = ObjectDecoder(tuple(vision.channels), cfg.dim, cfg.obj_queries, cfg.obj_layers, cfg.num_heads,
                            cfg.fpn_dims, cfg.obj_mask_dim)
    in_dim = GEOMETRY + cfg.dim + sum(vision.channels[i] for i in POOLED_LEVELS) + COLOUR * cfg.ref_colour + MOTION
    referrer = TrackReferrer(in_dim, text.dim, cfg.dim, cfg.num_heads, cfg.ref_layers, cfg.ref_dropout)
    return ObjectRVOSModel(vision=vision, text=text, objects=objects, referrer=referrer, bins=cfg.ref_bins,
                           momentum=cfg.track_momentum, colour=cfg.ref_colour, config=cfg)
