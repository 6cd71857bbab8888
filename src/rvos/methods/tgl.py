"""TGL, temporally grounded learning (paper 003, "Temporal Grounding as a Learning Signal for RVOS"): temporal spans
(when each object is referred to, MeViS-M style) used as a training signal. The paper is an abstract; this is our
reading of each part, on the model family's contracts (any head: `SimRVOS.losses` gives its segmentation terms).

Parts and where they live:
- spans: `rvos.data.spans` (the `temporal_spans.json` layout; readers; the synthetic benchmark writes them); the
  `spans` regime keeps them; `Batch.in_span` [B, T] and `Batch.span_known` [B] carry them.
- moment head (`model.moment=true`, rvos.models.moment): relevance logits [B, T]; loss `moment` = BCE against
  `in_span` on the valid frames of clips whose spans are known (a negative expression holds nowhere, so its frames
  are all 0). A batch without any known span leaves the part out and logs `moment_skipped` = 1 (train with
  `data.regime=spans` on a dataset with spans).
- moment-guided sampling: `data.clip.sampling=moment` (rvos.data.clips): clips straddle a span boundary.
- MDP, moment-guided dual-path propagation (`mdp`, needs `model.propagation=true` and the moment head):
  * language path = the model's head. Its segmentation terms (dice, focal; score/box with the multi head) are
    computed on the referred frames only (`language_frames="span"`: in_span, plus every frame of a negative pair,
    whose target is empty, and of a clip with unknown spans); it is never asked to find the object where the
    sentence does not hold.
  * propagation path (rvos.models.propagation, visual features only): up to `train_queries` valid MASK frames of
    each positive clip that have another referred frame in the clip (those outside the spans first) are segmented
    by reading the memory of their `train_memory` nearest referred frames (the frame itself excluded: referred
    frames are supervised in leave-one-out fashion, the others from the moment). The memory holds the annotated masks (`memory_mask="gt"`, teacher forcing) or the
    language path's detached probabilities (`"pred"`, what inference writes). Loss: `prop_dice` + `prop_focal`.
  * at inference the predicted relevance picks the path per frame (rvos.infer.mdp).
- OSS, object-level selective supervision: `data.clip.oss=true` (rvos.data.clips): a clip's target is only the
  referred objects the expression refers to within the clip's frames; both paths are supervised with it.

Weights (ours; the paper gives none): segmentation as SimRVOS (dice 5, focal 2, and the multi head's terms),
moment 2 (the weight of the other classification terms: score focal, R2-VOS consensus), prop_dice 5 and
prop_focal 2 (the mask terms' weights). `moment=false`, `mdp=false` switch parts off for ablations; with both off
and the clip options off, TGL is SimRVOS.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F

from rvos.data.batch import Batch
from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.mask import dice_loss, sigmoid_focal_loss
from rvos.methods.simrvos import DEFAULT_WEIGHTS as SEG_WEIGHTS
from rvos.methods.simrvos import PARTS as SEG_PARTS
from rvos.methods.simrvos import SimRVOS, SimRVOSConfig
from rvos.models.output import RVOSOutput
from rvos.models.propagation import PropFeatures, nearest_memory

TGL_PARTS = ("moment", "prop_dice", "prop_focal")
PARTS = SEG_PARTS + TGL_PARTS
TGL_WEIGHTS = {"moment": 2.0, "prop_dice": 5.0, "prop_focal": 2.0}
DEFAULT_WEIGHTS = {head: {**w, **TGL_WEIGHTS} for head, w in SEG_WEIGHTS.items()}
SWITCH = {"moment": ("moment",), "mdp": ("prop_dice", "prop_focal")}


@dataclass
class TGLConfig(SimRVOSConfig):
    """SimRVOSConfig plus the TGL switches. `weights` may name any of PARTS; None -> DEFAULT_WEIGHTS."""

    moment: bool = True  # moment head loss (needs model.moment=true)
    mdp: bool = True  # propagation path loss (needs model.propagation=true and model.moment=true)
    language_frames: str = "auto"  # where the language path is supervised: all | span | auto (span with mdp)
    memory_mask: str = "gt"  # what the training memory holds: gt (annotated masks) | pred (detached language path)
    train_memory: int = 2  # memory frames per propagated frame in training (the nearest referred ones)
    train_queries: int = 2  # frames propagated per clip in training (frames outside the spans first); 0 = all
    moment_pos_weight: Optional[float] = None  # BCE weight of referred frames


class TGL(SimRVOS):
    def __init__(self, model: torch.nn.Module, cfg: TGLConfig | None = None):
        cfg = cfg or TGLConfig()
        mcfg = getattr(model, "config", None)
        if cfg.moment and getattr(model, "moment", None) is None:
            raise ConfigError("method tgl with moment=true needs a model built with model.moment=true")
        if cfg.mdp and (getattr(model, "propagation", None) is None or getattr(model, "moment", None) is None):
            raise ConfigError("method tgl with mdp=true needs model.propagation=true and model.moment=true (the "
                              "predicted relevance picks the path at inference)")
        if cfg.language_frames not in ("auto", "all", "span"):
            raise ConfigError(f"tgl language_frames must be auto, all or span, got {cfg.language_frames!r}")
        if cfg.memory_mask not in ("gt", "pred"):
            raise ConfigError(f"tgl memory_mask must be gt or pred, got {cfg.memory_mask!r}")
        if cfg.train_memory < 1 or cfg.train_queries < 0:
            raise ConfigError(f"tgl train_memory must be >= 1 and train_queries >= 0, got {cfg.train_memory}, "
                              f"{cfg.train_queries}")
        head = getattr(mcfg, "head", "single")
        weights = dict(cfg.weights if cfg.weights is not None else DEFAULT_WEIGHTS[head])
        unknown = sorted(set(weights) - set(PARTS))
        if unknown:
            raise ConfigError(f"TGL weights: unknown parts {unknown}; known parts: {list(PARTS)}")
        off = {p for switch, parts in SWITCH.items() if not getattr(cfg, switch) for p in parts}
        weights = {k: w for k, w in weights.items() if k not in off}
        super().__init__(model, replace(cfg, weights={k: w for k, w in weights.items() if k in SEG_PARTS}))
        self.cfg, self.weights = cfg, weights
        self.span_language = cfg.language_frames == "span" or (cfg.language_frames == "auto" and cfg.mdp)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        B, T = batch.size
        feats = batch.features
        if feats is None:  # encode once: the head and the propagation path read the same visual features
            flat = self.model.encode_frames(batch.frames.flatten(0, 1))
            feats = [f.reshape(B, T, *f.shape[1:]) for f in flat]  # [B, T, C_l, H_l, W_l]
        out = self.model(None, batch.text, features=feats)
        parts = self.losses(out, batch, feats)
        return self.combine(parts)

    def losses(self, out: RVOSOutput, batch: Batch, features: Optional[list[torch.Tensor]] = None
               ) -> dict[str, torch.Tensor]:
        known = batch.span_known if batch.span_known is not None else torch.ones_like(batch.positive)
        known = known.bool()
        seg_batch = batch
        if self.span_language:
            keep = batch.in_span.bool() | ~batch.positive[:, None] | ~known[:, None]
            seg_batch = replace(batch, valid=batch.valid.bool() & keep)
        parts = super().losses(out, seg_batch)
        if self.cfg.moment:
            if out.relevance is None:
                raise ConfigError("tgl: the model output has no relevance logits; build it with model.moment=true")
            frames = batch.valid.bool() & known[:, None]
            if frames.any():
                parts["moment"] = moment_loss(out.relevance, batch.in_span, frames, self.cfg.moment_pos_weight)
                parts["moment_skipped"] = out.relevance.new_tensor(0.0)
            else:
                parts["moment_skipped"] = out.relevance.new_tensor(1.0)
        if self.cfg.mdp:
            if features is None:
                raise ConfigError("tgl: the propagation loss needs the clip's visual features")
            parts.update(self.propagation_losses(out, batch, features))
        return parts

    def propagation_losses(self, out: RVOSOutput, batch: Batch, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """prop_dice + prop_focal of the propagation path (see the module docstring)."""
        prop = self.model.propagation
        B, T = batch.size
        mask_frames = batch.valid.bool() & (batch.target_kind == int(TargetKind.MASK)) & batch.positive[:, None]
        reference = mask_frames & batch.in_span.bool()
        idx, slot = nearest_memory(reference, self.cfg.train_memory)  # [B, T, M]
        query = select_queries(mask_frames & slot.any(-1), batch.in_span.bool(), self.cfg.train_queries)
        logits = out.mask_logits  # [B, T, Q, h, w]
        if not query.any():
            zero = logits.sum() * 0.0
            return {"prop_dice": zero, "prop_focal": zero}
        feats = prop.embed([f.flatten(0, 1) for f in features[:3]])  # N = B*T
        h, w = feats.fine.shape[-2:]
        if self.cfg.memory_mask == "gt":
            memory = F.adaptive_avg_pool2d(batch.masks.flatten(0, 1)[:, None].float(), (h, w))[:, 0]  # [B*T, h, w]
        else:
            p = logits.float().sigmoid()
            if p.shape[2] > 1:
                p = (p * out.scores.float().softmax(-1)[..., None, None]).sum(2)
            else:
                p = p[:, :, 0]
            memory = F.interpolate(p.flatten(0, 1)[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0].detach()
        keys, values = prop.encode_memory(feats, memory)  # [B*T, K, S], [B*T, V+1, S]
        b_idx, t_idx = query.nonzero(as_tuple=True)  # N_q query frames
        mem = b_idx[:, None] * T + idx[b_idx, t_idx]  # [N_q, M] rows of the memory frames
        dt = (t_idx[:, None] - idx[b_idx, t_idx]).float()
        q_rows = b_idx * T + t_idx
        pred = prop.propagate(feats[q_rows], keys[mem], values[mem], dt, slot[b_idx, t_idx])  # [N_q, h, w]
        full = logits.new_zeros(B, T, 1, h, w).float()
        full[b_idx, t_idx, 0] = pred.float()
        chosen, masks = self._resize(full, batch.masks)
        chosen = chosen[:, :, 0]
        a, g = self.cfg.focal_alpha, self.cfg.focal_gamma
        return {"prop_dice": dice_loss(chosen, masks, query), "prop_focal": sigmoid_focal_loss(chosen, masks, query, a, g)}

    def combine(self, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted sum; `moment` may be absent (no known span in this batch: `moment_skipped`), any other weighted
        part must be there."""
        missing = [k for k, w in self.weights.items() if w and k not in parts and k != "moment"]
        if missing:
            raise ConfigError(f"loss parts {missing} are weighted but were not computed")
        total = sum(w * parts[k] for k, w in self.weights.items() if w and k in parts)
        return {"loss": total, **parts}


def select_queries(candidates: torch.Tensor, in_span: torch.Tensor, count: int) -> torch.Tensor:
    """At most `count` of the candidate frames [B, T] per clip (0 = all): those outside the spans first (what
    the propagation path is for at inference), then referred ones; random within each group (global torch RNG,
    seeded by the trainer)."""
    if count <= 0:
        return candidates
    b, t = candidates.shape
    key = torch.rand(b, t, device=candidates.device) + in_span.float() * 2.0 + (~candidates).float() * 4.0
    rank = key.argsort(-1).argsort(-1)  # 0 = first choice
    return candidates & (rank < count)


def moment_loss(relevance: torch.Tensor, in_span: torch.Tensor, frames: torch.Tensor,
                pos_weight: Optional[float] = None) -> torch.Tensor:
    """Mean BCE of relevance logits [B, T] against in_span [B, T] over `frames` [B, T] (bool); referred frames
    weighted `pos_weight` (None = 1)."""
    target = in_span.to(relevance.dtype)
    pw = None if pos_weight is None else relevance.new_tensor(pos_weight)
    bce = F.binary_cross_entropy_with_logits(relevance.float(), target.float(), reduction="none",
                                             pos_weight=None if pw is None else pw.float())
    return bce[frames].mean()
