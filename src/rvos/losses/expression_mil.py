"""Instance-aware expression classification under multiple-instance learning (WSRVOS).

A video (clip) is a bag of proposals: the Q queries of the multi-query head, each a mask with a logit per
candidate sentence (models/expression_scorer.py). Nobody says which proposal is the referred object, only which
sentence is true for the video: the positive, against its hard negatives and the expressions of the video's other
objects. So the proposals are aggregated into one score per (video, sentence), and a cross-entropy over the
candidate sentences asks the positive to win:

  x_qe   = mean over valid frames t of x_tqe                 a proposal is a query across the clip
  S_e    = pool_q x_qe                                       "max" | "lse" (log-sum-exp, a soft max) | "mean"
  L_cls  = - log softmax_e(S)[positive]                      over the candidates that exist
"""
from __future__ import annotations

import torch

from rvos.errors import ConfigError

POOLS = ("max", "lse", "mean")


def video_scores(logits: torch.Tensor, valid: torch.Tensor, pool: str = "lse") -> torch.Tensor:
    """logits [K, T, Q, E] (frame t, proposal q, candidate e), valid bool [K, T] -> S [K, E]."""
    if pool not in POOLS:
        raise ConfigError(f"MIL pool must be one of {POOLS}, got {pool!r}")
    w = valid.to(logits.dtype)[:, :, None, None]  # [K, T, 1, 1]
    per_query = (logits * w).sum(1) / w.sum(1).clamp(min=1.0)  # [K, Q, E]
    if pool == "max":
        return per_query.max(1).values
    if pool == "lse":
        return per_query.logsumexp(1)
    return per_query.mean(1)


def expression_classification_loss(logits: torch.Tensor, valid: torch.Tensor, candidates: torch.Tensor,
                                   pool: str = "lse") -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the positive (candidate 0) against the other candidates of each bag.

    logits [K, T, Q, E], valid bool [K, T], candidates bool [K, E] (which of the E slots hold a sentence; slot 0
    is the positive). Returns (mean loss over the bags that have a competitor, bool [K] of those bags). With no
    such bag the loss is 0 connected to the graph; the caller decides what that means."""
    if not bool(candidates[:, 0].all()):
        raise ConfigError("expression classification: candidate 0 (the positive) must exist in every bag")
    s = video_scores(logits, valid, pool).masked_fill(~candidates, float("-inf"))  # [K, E]
    usable = (candidates.sum(1) >= 2) & valid.any(1)
    if not usable.any():
        return logits.sum() * 0.0, usable
    loss = -(s[usable].log_softmax(-1)[:, 0])
    return loss.mean(), usable
