"""WSRVOS training (paper 000, "Weakly-Supervised RVOS through Text Supervision"): masks learnt from text alone.

The model needs `model.expression_scorer=true` (query scores are the match of each query's mask-pooled visual
feature with a sentence, models/expression_scorer.py); `model.selection=true` adds the bidirectional feature
selection (models/selection.py); the multi-query head gives the proposals. Data: `data.regime=text` (no mask,
box or visibility reaches the method: a batch that carries one is refused) and, for the augmentation, the
expressions' augmented positives and hard negatives (`rvos augment`, read through `data.augment`).

One step, for each clip b of the batch with its expression e_b:
1. Forwards: e_b and up to P of its augmented positives, all on the clip's (cached) visual features: K = B (1 + P)
   forwards. The paper joins each kept positive to the original ("<original>. <positive>", `concat_original`);
   the public code does not, and neither do we by default: a joined positive is told from a one-sentence negative
   by its form alone (two sentences against one), a shortcut the classification takes.
2. `cls`, instance-aware expression classification (losses/expression_mil.py): each forward's Q proposals are
   scored against its own sentence, e_b's hard negatives (up to N) and the expressions of the video's other
   objects (up to M; with `batch_negatives` also the other clips' sentences of other videos); MIL pooling over
   proposals, cross-entropy with the forward's own sentence as the class.
3. `fusion_dice`, `fusion_focal`, positive prediction fusion (losses/positive_fusion.py): the masks of the chosen
   proposal (highest video score for its own sentence, the predictor's rule) of the 1 + P forwards of a clip are
   fused by agreement into a pseudo-mask of confident pixels, which supervises every one of them with Dice +
   Focal, from step `fusion_from_step` on (warm-up: before it the proposals are noise).
4. `ranking`, temporal segment ranking (losses/ranking.py) on the chosen masks of every forward.
Option `token_classification` adds `cls_token`: every language-free visual token is a proposal too (a class
activation map, as the public code's similarity maps), against the sentences absent from the video only (another
object's expression is true of the same tokens); `fusion_source="tokens"` then fuses these maps instead of the
chosen masks.

Weights (DEFAULT_WEIGHTS) follow the public code: cls 1, segmentation 2 (on each of dice and focal), ranking 1.
Every part has a switch for the ablations (`classification`, `fusion`, `ranking`; `augmentation=false` drops the
positives and hard negatives: one forward per clip, candidates from the other objects' expressions only;
selection is a model option). A part that is switched on but undefined in a batch (no competitor sentence, no
three frames, fusion still warming up) is left out of the total and flagged (`cls_skipped`, `ranking_skipped`,
`fusion_active`), never reported as a zero loss. Diagnostics: `cls_acc` (bags whose positive scores highest),
`pseudo_fg` and `pseudo_confident` (shares of the pseudo-mask's pixels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from rvos.data.batch import Batch
from rvos.data.types import TargetKind
from rvos.errors import ConfigError
from rvos.losses.expression_mil import POOLS, expression_classification_loss, video_scores
from rvos.losses.positive_fusion import confident_dice, confident_focal, fuse_positives
from rvos.losses.ranking import temporal_ranking_loss
from rvos.methods.simrvos import SimRVOS

PARTS = ("cls", "cls_token", "fusion_dice", "fusion_focal", "ranking")
DEFAULT_WEIGHTS = {"cls": 1.0, "cls_token": 1.0, "fusion_dice": 2.0, "fusion_focal": 2.0, "ranking": 1.0}
SWITCHES = {"classification": ("cls", "cls_token"), "token_classification": ("cls_token",),
            "fusion": ("fusion_dice", "fusion_focal"), "ranking": ("ranking",)}


@dataclass
class WSRVOSConfig:
    weights: Optional[dict[str, float]] = None  # parts of PARTS; None -> DEFAULT_WEIGHTS
    num_positives: int = 2  # P augmented positives per clip and step (a seeded draw when there are more)
    num_negatives: int = 4  # N hard negatives per clip as candidates
    num_others: int = 4  # other objects' expressions of the same video as candidates
    batch_negatives: bool = False  # also the other clips' sentences (of other videos) as candidates
    augmentation: bool = True  # False: no augmented positives and no hard negatives (ablation)
    concat_original: bool = False  # a positive reads "<original>. <positive>" (the paper's text; see below)
    classification: bool = True
    mil_pool: str = "lse"  # proposals -> video score: lse | max | mean
    token_classification: bool = False  # also every visual token as a proposal (an activation map, `cls_token`)
    fusion_source: str = "masks"  # what the fusion fuses: "masks" (the chosen queries') | "tokens" (activation maps)
    fusion: bool = True
    fusion_from_step: int = 100  # warm-up steps before the pseudo-masks supervise
    fusion_fg: float = 0.6  # vote foreground at n_k >= fg (n_k: the map over its own maximum with normalize)
    fusion_bg: float = 0.2  # vote background at n_k <= bg
    fusion_agree: float = 1.0  # share of the positives' weight that must agree
    fusion_normalize: bool = True  # min-max of each map per frame before voting (else sigmoid against fg / bg)
    fusion_min_contrast: float = 0.1  # a map flatter than this (max - min) abstains in that frame
    fusion_on_logits: bool = False  # normalise the logits instead of the probabilities (see BENCHMARKS.md)
    ranking: bool = True
    ranking_margin: float = -0.1  # the public code's tolerance 0.1 (see losses/ranking.py)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    seed: int = 0  # the draw of positives / negatives when a clip has more than asked


def join(original: str, positive: str) -> str:
    """A retained positive concatenated with the original expression."""
    return f"{original.rstrip(' .')}. {positive}"


class WSRVOS(nn.Module):
    def __init__(self, model: nn.Module, cfg: WSRVOSConfig | None = None):
        super().__init__()
        cfg = cfg or WSRVOSConfig()
        self.model, self.cfg = model, cfg
        if getattr(model, "expression_scorer", None) is None:
            raise ConfigError("method wsrvos needs a model built with model.expression_scorer=true (the query "
                              "scores that the expression classification trains)")
        if cfg.fusion_source not in ("tokens", "masks"):
            raise ConfigError(f"wsrvos fusion_source must be 'tokens' or 'masks', got {cfg.fusion_source!r}")
        if cfg.mil_pool not in POOLS:
            raise ConfigError(f"wsrvos mil_pool must be one of {POOLS}, got {cfg.mil_pool!r}")
        if min(cfg.num_positives, cfg.num_negatives, cfg.num_others) < 0:
            raise ConfigError("wsrvos num_positives, num_negatives and num_others must be >= 0")
        if not 0.0 <= cfg.fusion_bg < cfg.fusion_fg <= 1.0 or not 0.0 < cfg.fusion_agree <= 1.0:
            raise ConfigError(f"wsrvos needs 0 <= fusion_bg < fusion_fg <= 1 and 0 < fusion_agree <= 1, got "
                              f"{cfg.fusion_bg}, {cfg.fusion_fg}, {cfg.fusion_agree}")
        weights = dict(cfg.weights if cfg.weights is not None else DEFAULT_WEIGHTS)
        unknown = sorted(set(weights) - set(PARTS))
        if unknown:
            raise ConfigError(f"WSRVOS weights: unknown parts {unknown}; known parts: {list(PARTS)}")
        for flag, names in SWITCHES.items():
            if not getattr(cfg, flag):
                weights = {k: w for k, w in weights.items() if k not in names}
        self.weights = {k: float(w) for k, w in weights.items() if w}
        if not self.weights:
            raise ConfigError("WSRVOS: every loss part is switched off or weighted 0")
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))  # checkpointed with the method

    parameter_groups = SimRVOS.parameter_groups

    @property
    def fusion_active(self) -> bool:
        return self.cfg.fusion and int(self.steps_seen) >= self.cfg.fusion_from_step

    # ---- inputs ------------------------------------------------------------------------------------------------
    @staticmethod
    def check_text_only(batch: Batch) -> None:
        """Refuse a batch that carries any spatial target: WSRVOS learns from sentences alone."""
        carried = [name for name, bad in (
            ("a MASK or BOX target kind", bool((batch.target_kind != int(TargetKind.NONE)).any())),
            ("mask pixels", bool(batch.masks.any())), ("boxes", bool(batch.boxes.any())),
            ("visibility ('present')", bool(batch.present.any()))) if bad]
        if carried:
            raise ConfigError(f"method wsrvos learns from text alone, but the batch carries {', '.join(carried)}: "
                              "train it with data.regime=text")

    def _draw(self, items: list[str], n: int, b: int, salt: int) -> list[str]:
        items = list(dict.fromkeys(items))
        if len(items) <= n:
            return items
        rng = np.random.default_rng([self.cfg.seed, int(self.steps_seen), b, salt])
        return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]

    def plan(self, batch: Batch) -> tuple[list[int], list[str], list[list[str]], list[list[bool]]]:
        """(clip of each forward, its sentence, its candidate sentences with its own first, and for each candidate
        whether it is another object's expression of the same video: true of the video, false of the instance)."""
        c = self.cfg
        clips, texts, cands, local = [], [], [], []
        for b in range(len(batch.text)):
            if not bool(batch.positive[b]):
                continue  # an absent-object pair has no sentence to classify as true
            main = batch.text[b]
            positives = self._draw(batch.positives[b], c.num_positives, b, 0) if c.augmentation and batch.positives else []
            negatives = self._draw(batch.negatives[b], c.num_negatives, b, 1) if c.augmentation and batch.negatives else []
            others = self._draw(batch.others[b], c.num_others, b, 2) if batch.others else []
            if c.batch_negatives:  # other videos' sentences: absent from this one
                negatives += [batch.text[j] for j in range(len(batch.text)) if batch.video_ids[j] != batch.video_ids[b]]
            own = [main] + [join(main, p) if c.concat_original else p for p in positives]
            for text in dict.fromkeys(own):
                clips.append(b)
                texts.append(text)
                wrong = [s for s in dict.fromkeys(negatives + others) if s not in own]
                cands.append([text] + wrong)
                local.append([False] + [s in others and s not in negatives for s in wrong])
        return clips, texts, cands, local

    # ---- step --------------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.check_text_only(batch)
        parts = self.losses(batch)
        if self.training:
            self.steps_seen += 1
        return self.combine(parts)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        m, c = self.model, self.cfg
        B, T = batch.size
        clips, texts, cands, local = self.plan(batch)
        if not clips:
            raise ConfigError("wsrvos: the batch has no positive expression (set data.clip.negatives=false)")
        if batch.features is not None:
            per_level = batch.features  # [B, T, C_l, H_l, W_l]
        else:
            per_level = [f.reshape(B, T, *f.shape[1:]) for f in m.encode_frames(batch.frames.flatten(0, 1))]
        index = torch.tensor(clips, device=batch.valid.device)
        K = len(clips)
        feats = [f[index].flatten(0, 1) for f in per_level]  # [K*T, C_l, H_l, W_l]
        out = m.decode(feats, m.encode_text(texts), K, T)
        valid = batch.valid.bool()[index]  # [K, T]
        z = out.extras["proposal_features"]  # [K, T, Q, D]
        unique = list(dict.fromkeys(s for row in cands for s in row))
        pos = {s: i for i, s in enumerate(unique)}
        E = max(len(row) for row in cands)
        slot = torch.zeros(K, E, dtype=torch.long, device=z.device)
        exists = torch.zeros(K, E, dtype=torch.bool, device=z.device)
        same_video = torch.zeros(K, E, dtype=torch.bool, device=z.device)
        for k, row in enumerate(cands):
            slot[k, : len(row)] = torch.tensor([pos[s] for s in row], device=z.device)
            exists[k, : len(row)] = True
            same_video[k, : len(row)] = torch.tensor(local[k], device=z.device)
        all_logits = m.match_sentences(z, unique)  # [K, T, Q, U]
        logits = all_logits.gather(-1, slot[:, None, None, :].expand(-1, T, all_logits.shape[2], -1))  # [K,T,Q,E]
        parts: dict[str, torch.Tensor] = {}
        zero = logits.new_tensor(0.0)
        if c.classification:
            loss, usable = expression_classification_loss(logits, valid, exists, c.mil_pool)
            if usable.any():
                parts["cls"] = loss
                s = video_scores(logits.detach(), valid, c.mil_pool).masked_fill(~exists, float("-inf"))
                parts["cls_acc"] = (s[usable].argmax(-1) == 0).float().mean()
            parts["cls_skipped"] = zero + (0.0 if usable.any() else 1.0)
        cam = None
        if c.token_classification or c.fusion_source == "tokens":
            plain = out.extras["plain_visual"]  # [K, T, D, h, w]
            hw = plain.shape[-2:]
            zt = m.expression_scorer.tokens(plain.flatten(0, 1)).reshape(K, T, -1, z.shape[-1])  # [K, T, h*w, D]
            tok_all = m.match_sentences(zt, unique)  # [K, T, h*w, U]
            tok = tok_all.gather(-1, slot[:, None, None, :].expand(-1, T, tok_all.shape[2], -1))  # [K, T, h*w, E]
            cam = tok[..., 0].reshape(K, T, *hw)  # [K, T, h, w], each forward's own sentence
            if c.token_classification:
                # language-free tokens are the same whatever the sentence: another object's expression is true of
                # the video's tokens, so only what is absent from the video (hard and other videos' negatives) competes
                loss, usable = expression_classification_loss(tok, valid, exists & ~same_video, c.mil_pool)
                if usable.any():
                    parts["cls_token"] = loss
                parts["cls_token_skipped"] = zero + (0.0 if usable.any() else 1.0)  # e.g. no sentence absent
        per_query = (logits[..., 0].detach() * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        chosen_q = per_query.argmax(-1)  # [K], the predictor's rule: the best query for its own sentence
        ar = torch.arange(K, device=z.device)
        chosen = out.mask_logits[ar, :, chosen_q]  # [K, T, h, w]
        if c.fusion:
            parts["fusion_active"] = zero + float(self.fusion_active)
            if self.fusion_active:
                source = chosen
                if c.fusion_source == "tokens":  # activation maps at the mask resolution
                    source = torch.nn.functional.interpolate(cam.detach().float(), size=chosen.shape[-2:],
                                                             mode="bilinear", align_corners=False)
                parts.update(self._fusion(chosen, source, valid, clips))
        if c.ranking:
            rank, n = temporal_ranking_loss(chosen.sigmoid(), valid, batch.frame_index[index], c.ranking_margin)
            if n:
                parts["ranking"] = rank
            parts["ranking_skipped"] = zero + (0.0 if n else 1.0)
        return parts

    def _fusion(self, chosen: torch.Tensor, source: torch.Tensor, valid: torch.Tensor, clips: list[int]
                ) -> dict[str, torch.Tensor]:
        """chosen [K, T, h, w] mask logits supervised; source [K, T, h, w] logits whose agreement makes the
        pseudo-mask (the chosen masks themselves, or the activation maps)."""
        c = self.cfg
        dice, focal, fg, conf = [], [], [], []
        for b in dict.fromkeys(clips):
            ks = [k for k, cb in enumerate(clips) if cb == b]
            # fusion_on_logits: min-max of the logits (a saturated sigmoid hides where the map is highest)
            maps = source[ks] if c.fusion_normalize and c.fusion_on_logits else source[ks].sigmoid()
            target, confident = fuse_positives(maps, None, c.fusion_fg, c.fusion_bg, c.fusion_agree,
                                               c.fusion_normalize, c.fusion_min_contrast)  # [T, h, w]
            v = valid[ks[0]]
            for k in ks:
                dice.append(confident_dice(chosen[k], target, confident)[v])
                focal.append(confident_focal(chosen[k], target, confident, c.focal_alpha, c.focal_gamma)[v])
            fg.append(target[v].mean())
            conf.append(confident[v].float().mean())
        return {"fusion_dice": torch.cat(dice).mean(), "fusion_focal": torch.cat(focal).mean(),
                "pseudo_fg": torch.stack(fg).mean().detach(), "pseudo_confident": torch.stack(conf).mean().detach()}

    def combine(self, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weighted sum. A part may be absent only when its batch left it undefined (the flags say so)."""
        flag = lambda name: float(parts.get(name, 0.0)) == 1.0  # noqa: E731
        warming = not flag("fusion_active")
        optional = {"cls": flag("cls_skipped"), "cls_token": flag("cls_token_skipped"), "ranking": flag("ranking_skipped"), "fusion_dice": warming,
                    "fusion_focal": warming}
        missing = [k for k in self.weights if k not in parts and not optional.get(k, False)]
        if missing:
            raise ConfigError(f"loss parts {missing} are weighted but were not computed")
        present = [k for k in self.weights if k in parts]
        if present:
            total = sum(self.weights[k] * parts[k] for k in present)
        else:  # nothing defined in this batch (e.g. warm-up of a fusion-only ablation): no signal this step
            total = self.model.expression_scorer.bias * 0.0
        return {"loss": total, **parts}
