"""R2-VOS training (R2-VOS section 4.5, eq. 7-11): L = L_segm + L_text + L_align over a batch of positive and
negative (video, sentence) pairs, with the model built with `ModelConfig(r2=True)`.

- L_segm = 1(A_hat) * L_match: SimRVOS's segmentation parts (`SimRVOS.losses`: dice + focal on the mask frames;
  with the multi-query head also the score focal and box L1 + GIoU of the Hungarian-matched query) on the
  POSITIVE pairs only. A negative pair's frames carry an empty target; they are left out of every segmentation
  term (the paper trains them through L_align alone).
- L_text = 1(A_hat) * (L_dist + lambda_angle L_angle) (eq. 8-10): the relational cycle loss
  (`rvos.losses.cycle.relational_cycle_loss`) between e (`out.sentence`) and e' (`out.extras["sentence_rec"]`) over
  the positives of the batch. A relation needs >= 2 (distance) / >= 3 (angle) positives: when a requested
  relation is undefined in a batch its part is left out of the parts and the total (never a zero reported as a
  loss) and `cycle_skipped` = 1.0 is logged.
- L_align: BCE of the video-level consensus logit A (`out.presence`) against the pair label, on ALL pairs.

Weights (`DEFAULT_WEIGHTS`, the flat table `combine` uses; L_text's lambda_text and lambda_angle are folded in as
cycle_dist = lambda_text and cycle_angle = lambda_text * lambda_angle):
- segmentation: as SimRVOS (eq. 11's ReferFormer weights, which the paper follows: mask 5 dice + 2 focal, score 2,
  box L1 5 + GIoU 2). The paper uses Dice + BCE for L_mask; we keep SimRVOS's Dice + focal (WRVOS eq. 19).
- lambda_text, lambda_angle, lambda_align: the paper gives no values. Ours: cycle_dist 1, cycle_angle 2 (the 1:2
  distance:angle ratio of relational knowledge distillation, which eq. 9-10 follow), consensus 2 (the weight of
  the other classification term, the score focal).

Ablations (R2-VOS Table 3-4): `cycle` = "both" | "distance" | "angle" | "none" and `consensus` = True | False
switch parts off (their weights are dropped). Without the consensus term the presence head is never trained, so
its A is noise: inference must then not gate (`Predictor(gate=False)`; `rvos segment` and `rvos eval --checkpoint`
read `method.params.consensus: false` from the checkpoint's config and turn gating off, see
`rvos.infer.command.gate_for_config`), and R comes from the masks alone, as for a plain SimRVOS.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch

from rvos.data.batch import Batch
from rvos.errors import ConfigError
from rvos.losses.cycle import relational_cycle_loss
from rvos.methods.simrvos import DEFAULT_WEIGHTS as SEG_WEIGHTS
from rvos.methods.simrvos import PARTS as SEG_PARTS
from rvos.methods.simrvos import SimRVOS, SimRVOSConfig
from rvos.models.consensus import consensus_loss
from rvos.models.output import RVOSOutput

R2_PARTS = ("cycle_dist", "cycle_angle", "consensus")
PARTS = SEG_PARTS + R2_PARTS
R2_WEIGHTS = {"cycle_dist": 1.0, "cycle_angle": 2.0, "consensus": 2.0}  # ours: the paper gives no values
DEFAULT_WEIGHTS = {head: {**w, **R2_WEIGHTS} for head, w in SEG_WEIGHTS.items()}
CYCLES = {"both": ("cycle_dist", "cycle_angle"), "distance": ("cycle_dist",), "angle": ("cycle_angle",), "none": ()}


@dataclass
class R2VOSConfig(SimRVOSConfig):
    """SimRVOSConfig (weights, focal, resolution, matching costs) plus the R2-VOS switches. `weights` may name
    any of PARTS; None -> DEFAULT_WEIGHTS of the model's head."""

    cycle: str = "both"  # relations of L_text: both | distance | angle | none (Table 4)
    consensus: bool = True  # L_align; False: the presence head is not trained (and inference must not gate)
    consensus_pos_weight: Optional[float] = None  # BCE weight of positives (e.g. to balance a negative ratio)
    cycle_detach_target: bool = True  # E is the reference structure (see rvos.losses.cycle)


class R2VOS(SimRVOS):
    def __init__(self, model: torch.nn.Module, cfg: R2VOSConfig | None = None):
        cfg = cfg or R2VOSConfig()
        mcfg = getattr(model, "config", None)
        if mcfg is None or not getattr(mcfg, "r2", False) or getattr(model, "r2", None) is None:
            raise ConfigError("method r2vos needs a model built with model.r2=true (early grounding, text "
                              "reconstruction and the consensus head)")
        if cfg.cycle not in CYCLES:
            raise ConfigError(f"r2vos cycle must be one of {sorted(CYCLES)}, got {cfg.cycle!r}")
        weights = dict(cfg.weights if cfg.weights is not None else DEFAULT_WEIGHTS[mcfg.head])
        unknown = sorted(set(weights) - set(PARTS))
        if unknown:
            raise ConfigError(f"R2VOS weights: unknown parts {unknown}; known parts: {list(PARTS)}")
        # the ablation switches drop their parts whatever the table says
        off = set(CYCLES["both"]) - set(CYCLES[cfg.cycle]) | (set() if cfg.consensus else {"consensus"})
        weights = {k: w for k, w in weights.items() if k not in off}
        super().__init__(model, replace(cfg, weights={k: w for k, w in weights.items() if k in SEG_PARTS}))
        self.cfg = cfg
        self.weights = weights

    def losses(self, out: RVOSOutput, batch: Batch) -> dict[str, torch.Tensor]:
        """Unweighted parts: segmentation on positives, cycle on positives, consensus on all pairs."""
        positive = batch.positive.to(torch.bool)
        # 1(A_hat) of L_segm: negative pairs' frames leave every segmentation term (mask, score, box, matching)
        seg_batch = replace(batch, valid=batch.valid.bool() & positive[:, None])
        parts = super().losses(out, seg_batch)
        wanted = CYCLES[self.cfg.cycle]
        if wanted:
            e_rec = out.extras.get("sentence_rec")
            if e_rec is None:
                raise ConfigError("r2vos: the model output has no extras['sentence_rec'] (e'); build it with model.r2=true")
            mode = "both" if len(wanted) == 2 else self.cfg.cycle
            cyc = relational_cycle_loss(out.sentence, e_rec, positive, mode=mode, angle_weight=1.0,
                                        detach_target=self.cfg.cycle_detach_target)
            if cyc.distance is not None:
                parts["cycle_dist"] = cyc.distance
            if cyc.angle is not None:
                parts["cycle_angle"] = cyc.angle
            parts["cycle_skipped"] = out.sentence.new_tensor(0.0 if cyc.complete else 1.0)
        if self.cfg.consensus:
            if out.presence is None:
                raise ConfigError("r2vos: the model output has no presence logit A; build it with model.r2=true")
            parts["consensus"] = consensus_loss(out.presence, positive, self.cfg.consensus_pos_weight)
        return parts

    def combine(self, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted sum; a weighted cycle relation may be absent (undefined in this batch: `cycle_skipped`),
        any other weighted part must be there."""
        missing = [k for k, w in self.weights.items() if w and k not in parts and k not in CYCLES["both"]]
        if missing:
            raise ConfigError(f"loss parts {missing} are weighted but were not computed")
        total = sum(w * parts[k] for k, w in self.weights.items() if w and k in parts)
        return {"loss": total, **parts}
