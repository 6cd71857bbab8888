"""RVOSModel: vision encoder -> cross-modal fusion -> FPN -> dynamic-filter head (SimRVOS, WRVOS section III-B).

Frames of a clip are independent (each frame gets its own filters from its own fused feature), so a predictor
may run one frame at a time (unless `temporal`, below, is set: it mixes the frames of a clip). `encode_frames`
is the expensive part (what the feature cache stores); `decode` is everything after it.

Optional parts (ModelConfig.blcl / r2 / temporal_layers), all off by default:
- `blcl` (WRVOS III-D): the BLCL branch turns F_FPN into H (extras["blcl_h"], for the contrastive losses) and F_ENH;
  the dynamic filters then read F_ENH (`mask_features` is F_ENH), at training and inference.
- `r2` (R2-VOS section 4): early grounding replaces the language-aware top feature by f_early (over each clip's
  T frames); the text reconstruction reads f_early into e' (extras["sentence_rec"], [B, D]); e' is fused into the
  sentence the head and the FPN read; the consensus head H(e, e') gives `presence` [B] (video-level logit).
  A clip is the unit of the presence decision: the predictor averages it over its windows.
- `temporal` (ModelConfig.temporal_layers > 0, models/temporal.py): transformer layers over each clip's T x h x w
  fused tokens with a frame-index embedding, right after the fusion; frames of a clip then depend on each other
  (the predictor decodes windows of consecutive frames, so it gives the module a clip).
- `moment` (ModelConfig.moment, TGL, models/moment.py): per-frame relevance logits `relevance` [B, T] from the
  fused features and the head's masks, mixing the frames of a clip; `propagation` (ModelConfig.propagation,
  models/propagation.py): the language-agnostic mask propagation of MDP. `decode` does not call it: the TGL
  method and the predictor (rvos.infer.mdp) choose the memory frames and call it on the visual features.
- `expression_scorer` (ModelConfig.expression_scorer, WSRVOS, models/expression_scorer.py): the query scores are
  the match of each query's mask-pooled, language-free visual feature with the sentence; the pooled features go
  to extras["proposal_features"] [B, T, Q, D] and `match_sentences` scores them against any other sentences.
  With ModelConfig.selection the fusion first selects tokens and words (models/selection.py); the gates go to
  extras["selected_visual"] [B, T, h*w] and extras["selected_words"] [B, T, L].
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch
from torch import nn

from rvos.errors import ConfigError
from rvos.models.output import RVOSOutput
from rvos.models.text import TextEncoder, TextFeatures
from rvos.models.vision import VisionEncoder



def check_decode_inputs(features: list[torch.Tensor], text: TextFeatures, B: int, T: int) -> None:
    """ConfigError unless `features` are the 4 levels C2..C5 of B*T frames and `text` holds B sentences (the
    contract of every `decode`: both models and the ONNX runtime)."""
    if len(features) != 4:
        raise ConfigError(f"decode expects 4 feature levels (C2..C5), got {len(features)}")
    if features[0].shape[0] != B * T or text.sentence.shape[0] != B:
        raise ConfigError(f"decode got {features[0].shape[0]} frames and {text.sentence.shape[0]} sentences "
                          f"for B={B}, T={T}")

class R2Parts(nn.Module):
    """The R2-VOS modules, kept together (they are used together)."""

    def __init__(self, *, grounding: nn.Module, reconstruction: nn.Module, text_fusion: nn.Module, consensus: nn.Module,
                 rec_gate: Optional[nn.Module] = None):
        super().__init__()
        self.grounding = grounding  # models/early_grounding.py (eq. 4-6)
        self.reconstruction = reconstruction  # models/text_reconstruction.py: f_early -> e'
        self.text_fusion = text_fusion  # (e, e') -> the sentence the queries read
        self.consensus = consensus  # models/consensus.py: H(e, e') -> A
        self.rec_gate = rec_gate  # None: e' reads f_early (the paper); else gated language-free visual tokens


class RVOSModel(nn.Module):
    def __init__(self, *, vision: VisionEncoder, text: TextEncoder, fusion: nn.Module, fpn: nn.Module,
                 head: nn.Module, blcl: Optional[nn.Module] = None, r2: Optional[R2Parts] = None,
                 temporal: Optional[nn.Module] = None, moment: Optional[nn.Module] = None,
                 propagation: Optional[nn.Module] = None, expression_scorer: Optional[nn.Module] = None,
                 config=None):
        super().__init__()
        self.expression_scorer = expression_scorer
        self.vision = vision
        self.text = text
        self.fusion = fusion
        self.fpn = fpn
        self.head = head
        self.blcl = blcl
        self.r2 = r2
        self.temporal = temporal
        self.moment = moment
        self.propagation = propagation
        self.config = config

    def encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """frames [N, 3, H, W] in [0, 1] -> [C2, C3, C4, C5], each [N, C_l, H_l, W_l]."""
        return self.vision(frames)

    def encode_text(self, texts: list[str]) -> TextFeatures:
        return self.text(texts)

    def apply_filters(self, mask_features: torch.Tensor, filters: torch.Tensor,
                      boxes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Dynamic convolution (eq. 5) of any filters with any frames' mask features: [N,C_m,H,W] x [N,Q,P] ->
        [N, Q, H, W]. Methods use it for cross-frame segmentation (LGCFS, eq. 7)."""
        return self.head.mask_logits(mask_features, filters, boxes)

    def decode(self, features: list[torch.Tensor], text: TextFeatures, B: int, T: int) -> RVOSOutput:
        """features: C2..C5, each [B*T, C_l, H_l, W_l] (frame-major within a clip); text: B sentences."""
        check_decode_inputs(features, text, B, T)
        c2, c3, c4, c5 = features
        words = text.words.repeat_interleave(T, dim=0)  # [B*T, L, C_t]
        pad = text.pad_mask.repeat_interleave(T, dim=0)
        sent = text.sentence.repeat_interleave(T, dim=0)
        fused = self.fusion(c5, words, pad, sent, c4)
        if self.temporal is not None:
            fused = replace(fused, visual=self.temporal(fused.visual, fused.pos, B, T))  # [B*T, D, h, w], clip-aware
        e = self.fusion.project_sentence(text.sentence)  # [B, D]

        def bt(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(B, T, *x.shape[1:])

        extras: dict[str, torch.Tensor] = {}
        presence = None
        if self.r2 is not None:
            g = self.fusion.word_proj(text.words)  # [B, L, D], one set of words per clip
            grounding = self.r2.grounding.ground(fused.visual, g, text.pad_mask, fused.pos)
            f_early = grounding.f_early  # [B*T, D, h, w]
            memory, bias = (f_early, None) if self.r2.rec_gate is None else \
                self.r2.rec_gate.read(fused.plain, grounding.response)
            e_rec = self.r2.reconstruction(memory, B, fused.pos, bias)  # [B, D]
            presence = self.r2.consensus(e, e_rec)  # [B]
            e_query = self.r2.text_fusion(e, e_rec).repeat_interleave(T, dim=0)  # [B*T, D]
            fused = replace(fused, visual=f_early, sentence=e_query)
            extras["sentence_rec"] = e_rec
        mask_features = self.fpn(fused.visual, c4, c3, c2, fused.sentence)  # [B*T, C_m, H/4, W/4]
        if self.blcl is not None:
            branch = self.blcl(mask_features)
            extras["blcl_h"] = bt(branch.h)  # [B, T, D, H/4, W/4]
            mask_features = branch.enhanced  # F_ENH, same width as F_FPN
        filters, scores, boxes = self.head(fused)  # [B*T, Q, P], [B*T, Q], [B*T, Q, 4] | None
        masks = self.head.mask_logits(mask_features, filters, boxes)  # [B*T, Q, H/4, W/4]
        if self.expression_scorer is not None:  # WSRVOS: a query scores by what lies under its mask
            z = self.expression_scorer.proposals(masks, fused.plain)  # [B*T, Q, D]
            u = self.expression_scorer.embed_text(e).repeat_interleave(T, dim=0)  # [B*T, D]
            scores = self.expression_scorer.logits(z, u)  # [B*T, Q]
            extras["proposal_features"] = bt(z)
            extras["plain_visual"] = bt(fused.plain)  # [B, T, D, h, w], language-free tokens (token-level scores)
        if fused.selection is not None:
            extras["selected_visual"], extras["selected_words"] = bt(fused.selection.visual), bt(fused.selection.words)
        extras.update({"fused_visual": bt(fused.visual), "fused_words": bt(fused.words), "word_pad": bt(pad)})
        relevance = None
        if self.moment is not None:
            relevance = self.moment(extras["fused_visual"], e, bt(masks), bt(scores))  # [B, T]
        return RVOSOutput(
            mask_logits=bt(masks),
            scores=bt(scores),
            filters=bt(filters),
            mask_features=bt(mask_features),
            sentence=e,  # [B, D]
            boxes=None if boxes is None else bt(boxes),
            presence=presence,
            relevance=relevance,
            extras=extras,
        )

    def match_sentences(self, proposals: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Logits that each proposal shows each sentence: proposals [..., Q, D] (extras["proposal_features"]),
        E sentences -> [..., Q, E]. Needs ModelConfig.expression_scorer."""
        if self.expression_scorer is None:
            raise ConfigError("match_sentences needs a model built with model.expression_scorer=true")
        u = self.expression_scorer.embed_text(self.fusion.project_sentence(self.encode_text(list(texts)).sentence))
        return self.expression_scorer.logits_all(proposals, u.to(proposals.dtype))

    def forward(self, frames: Optional[torch.Tensor], text, features: Optional[list[torch.Tensor]] = None
                ) -> RVOSOutput:
        """frames [B, T, 3, H, W] in [0, 1], or None when `features` (per level [B, T, C_l, H_l, W_l], e.g. from
        the feature cache) replace the vision pass; text: B sentences or their TextFeatures."""
        return forward_clip(self, frames, text, features)


def forward_clip(model: nn.Module, frames: Optional[torch.Tensor], text, features: Optional[list[torch.Tensor]]):
    """The clip form every model shares: frames [B, T, 3, H, W] (or cached features per level [B, T, C_l, H_l,
    W_l]) and B sentences (or their TextFeatures) -> model.decode(flat features, text, B, T)."""
    if features is not None:
        B, T = features[0].shape[:2]
        flat = [f.flatten(0, 1) for f in features]  # [B*T, C_l, H_l, W_l]
    elif frames is not None:
        if frames.dim() != 5:
            raise ConfigError(f"forward expects frames [B, T, 3, H, W], got {tuple(frames.shape)}")
        B, T = frames.shape[:2]
        flat = model.encode_frames(frames.flatten(0, 1))
    else:
        raise ConfigError("forward needs frames or cached features")
    if not isinstance(text, TextFeatures):
        text = model.encode_text(list(text))
    if getattr(model, "decode_needs_frames", False):  # e.g. an objects model whose descriptors read colour
        return model.decode(flat, text, B, T, frames=None if frames is None else frames.flatten(0, 1))
    return model.decode(flat, text, B, T)
