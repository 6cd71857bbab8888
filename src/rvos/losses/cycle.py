"""Relational cycle consistency of R2-VOS (section 4.5, eq. 8-10), after relational knowledge distillation (RKD).

For the positive pairs of a batch, the sentence embeddings E = {e_i} and their reconstructions E' = {e'_i} should
have the same structure, not the same points (an object has many descriptions, so E -> E' is not bijective):
  L_dist  = mean over ordered pairs i != j      of  l_d( |e_i - e_j| / mu(E),  |e'_i - e'_j| / mu(E') )      (eq. 9)
  L_angle = mean over ordered triples i, j, k distinct of l_d( cos<(e_i, e_j, e_k), cos<(e'_i, e'_j, e'_k) )  (eq. 10)
  L_text  = 1(positive) * (L_dist + lambda_angle * L_angle)                                                   (eq. 8)
where mu is the mean distance over the pairs i != j, cos<(a, b, c) is the cosine of the angle at the vertex b
between a - b and c - b, and l_d is the Huber loss with delta = 1 (smooth L1).

Choices where the paper is open (stated):
- The paper writes sums over the tuples; we average them (as the RKD reference code does), so the scale does not
  grow with the square/cube of the batch size. `reduction="sum"` gives the literal sums.
- E is the reference structure: by default it is detached (`detach_target=True`), as the teacher is in RKD, so the
  loss moves the reconstruction (and what produces it) rather than collapsing E onto E'.
- A triple whose E-side angle is undefined (two identical sentence embeddings, e.g. the same expression twice in a
  batch) is left out; when every positive sentence embedding is the same point, mu(E) = 0 and the distance relation
  is undefined.

Undefined terms are None, never a zero: a distance relation needs >= 2 positives (and mu(E) > 0), an angle relation
>= 3 positives (and one non-degenerate triple). `CycleLoss.total` sums the defined requested terms and is None when
none is defined; `CycleLoss.complete` says whether every requested term was defined. A method should skip the term
(and log that it did) when `total` is None, rather than add a zero it would report as a loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from rvos.errors import ConfigError

MODES = ("distance", "angle", "both")
_EPS = 1e-12


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """x [n, C] -> Euclidean distances [n, n]; finite gradients at coincident points (sqrt of a clamped square)."""
    sq = (x[:, None, :] - x[None, :, :]).pow(2).sum(-1)
    return sq.clamp(min=_EPS).sqrt() * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))


def normalized_distances(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """phi_D of eq. 9 for all ordered pairs i != j: ([n*(n-1)] distances over their mean mu, mu). A collapsed set
    (mu = 0) gets mu clamped to a tiny value; the caller decides whether that side may be degenerate."""
    n = len(x)
    off = ~torch.eye(n, dtype=torch.bool, device=x.device)
    d = pairwise_distances(x)[off]  # row-major (i, j), i != j
    mu = d.mean()
    return d / mu.clamp(min=_EPS), mu


def triple_cosines(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos of the angle at vertex j of (x_i, x_j, x_k) for all (i, j, k): ([n, n, n] cosines, bool [n, n, n] valid:
    i, j, k distinct and both edges non-zero)."""
    n = len(x)
    diff = x[:, None, :] - x[None, :, :]  # [i, j, C] = x_i - x_j
    length = diff.norm(dim=-1)  # [i, j]
    unit = F.normalize(diff, p=2, dim=-1)
    cos = torch.einsum("ijc,kjc->ijk", unit, unit)  # <x_i - x_j, x_k - x_j> / (|.| |.|)
    idx = torch.arange(n, device=x.device)
    distinct = (idx[:, None, None] != idx[None, :, None]) & (idx[None, :, None] != idx[None, None, :]) & \
               (idx[:, None, None] != idx[None, None, :])
    edges = (length > 1e-6)[:, :, None] & (length > 1e-6).t()[None, :, :]  # |x_i - x_j| > 0 and |x_k - x_j| > 0
    return cos, distinct & edges


@dataclass
class CycleLoss:
    """Parts of eq. 8 over the positives; None = undefined (too few positives or a degenerate E)."""

    distance: Optional[torch.Tensor]
    angle: Optional[torch.Tensor]
    num_positive: int
    mode: str
    angle_weight: float

    @property
    def complete(self) -> bool:
        """Every requested relation was defined."""
        return (self.mode == "angle" or self.distance is not None) and (self.mode == "distance" or self.angle is not None)

    @property
    def total(self) -> Optional[torch.Tensor]:
        """L_dist + lambda_angle * L_angle over the defined requested terms; None when none is defined."""
        parts = []
        if self.distance is not None:
            parts.append(self.distance)
        if self.angle is not None:
            parts.append(self.angle_weight * self.angle)
        return None if not parts else sum(parts[1:], parts[0])


def relational_cycle_loss(e: torch.Tensor, e_rec: torch.Tensor, positive: Optional[torch.Tensor] = None,
                          mode: str = "both", angle_weight: float = 1.0, reduction: str = "mean",
                          detach_target: bool = True) -> CycleLoss:
    """e, e_rec [B, C] sentence embeddings and their reconstructions; positive bool [B] (None: all) selects the
    pairs whose video holds the referred object (the indicator 1(A_hat) of eq. 8)."""
    if mode not in MODES:
        raise ConfigError(f"cycle loss mode must be one of {MODES}, got {mode!r}")
    if reduction not in ("mean", "sum"):
        raise ConfigError(f"cycle loss reduction must be 'mean' or 'sum', got {reduction!r}")
    if e.dim() != 2 or e.shape != e_rec.shape:
        raise ConfigError(f"cycle loss got e {tuple(e.shape)} and e' {tuple(e_rec.shape)}; expected equal [B, C]")
    if positive is not None:
        if positive.shape != e.shape[:1]:
            raise ConfigError(f"cycle loss positive mask {tuple(positive.shape)} does not match batch {e.shape[0]}")
        keep = positive.to(torch.bool)
        e, e_rec = e[keep], e_rec[keep]
    if detach_target:
        e = e.detach()
    n = len(e)
    distance = angle = None
    if mode in ("distance", "both") and n >= 2:
        t, mu = normalized_distances(e)
        if float(mu.detach()) > 1e-6:  # otherwise every positive sentence is the same point: no relation to keep
            s, _ = normalized_distances(e_rec)
            distance = F.smooth_l1_loss(s, t, beta=1.0, reduction=reduction)
    if mode in ("angle", "both") and n >= 3:
        t, valid = triple_cosines(e)
        if bool(valid.any()):
            s, _ = triple_cosines(e_rec)
            angle = F.smooth_l1_loss(s[valid], t[valid], beta=1.0, reduction=reduction)
    return CycleLoss(distance, angle, n, mode, float(angle_weight))
