"""Early grounding of R2-VOS (section 4.2, eq. 4-6): a text-filtered visual feature f_early.

  h_f = LN(MCA(f, g) + f)      f' = LN(FFN(h_f) + h_f)                       (eq. 4)
  h_g = LN(MCA(g, f) + g)      g' = LN(FFN(h_g) + h_g)                       (eq. 5)
  Theta = {theta_i}_{i=1..K} = FC(pool_K(g'))                                   theta_i in R^C
  f_early = BN(phi(theta_1^T f' (+) ... (+) theta_K^T f') + f')                (eq. 6)

Reading of what the paper leaves open (stated, not guessed silently):
- f is the top (stride-32) visual feature already projected to the width D = C the words are projected to.
- Eq. 4 and 5 are computed in parallel from the original f and g (both use the un-updated other modality).
- The attention runs over a whole clip: the T*h*w visual tokens of a clip attend to its L words, and the words
  attend to all T*h*w tokens (f in R^{T x C x HW}; one g' and one set of kernels per clip, as eq. 6 applies Theta
  to f' in R^{C x THW}). Padding words are masked out as keys. An optional positional embedding is added to the
  visual tokens where they serve as queries/keys (not to the values), as the transformer layers the paper cites.
- "pooled to a fixed length": the real (non-padding) words of g' are adaptively average-pooled to K positions
  (bins as torch's adaptive pooling: [floor(kn/K), ceil((k+1)n/K)) of n words; a sentence shorter than K repeats
  words), then one shared FC maps each pooled vector to a kernel theta_k in R^C.
- theta_k^T f' is a 1x1 dynamic convolution with one output channel (the dot product of the kernel with each
  token), so the concatenation has K channels; phi is a convolution K -> C (kernel `phi_kernel`, 1 by default)
  so that it can be added to f'. BN is BatchNorm2d over the B*T frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from rvos.errors import ConfigError


def adaptive_word_pool(words: torch.Tensor, pad_mask: torch.Tensor, k: int) -> torch.Tensor:
    """Average the real words of each sentence into k bins: words [B, L, C], pad_mask [B, L] -> [B, k, C]."""
    n = (~pad_mask).sum(1)  # [B] real words (padding is at the end, as every text encoder here pads)
    if not torch.compiler.is_exporting() and bool((n == 0).any()):  # a data-dependent branch export cannot trace
        raise ConfigError("early grounding got a sentence with no real words")
    i = torch.arange(k, device=words.device)
    start = torch.div(i[None] * n[:, None], k, rounding_mode="floor")  # [B, k]
    end = torch.div((i[None] + 1) * n[:, None] + k - 1, k, rounding_mode="floor")  # ceil
    pos = torch.arange(words.shape[1], device=words.device)
    inside = (pos[None, None] >= start[..., None]) & (pos[None, None] < end[..., None])  # [B, k, L]
    weights = inside.to(words.dtype) / (end - start).clamp(min=1)[..., None].to(words.dtype)
    return torch.bmm(weights, words)  # [B, k, C]


@dataclass
class Grounding:
    f_early: torch.Tensor  # [B*T, D, h, w], eq. 6
    words: torch.Tensor  # g' [B, L, D], eq. 5
    response: torch.Tensor  # [B*T, K, h, w], theta_k^T f' of eq. 6 (how well each token matches each kernel)


class EarlyGrounding(nn.Module):
    """f [B*T, D, h, w] (frame-major within a clip) + words g [B, L, D] -> f_early [B*T, D, h, w]."""

    def __init__(self, dim: int, num_heads: int = 4, num_kernels: int = 8, ffn_dim: Optional[int] = None,
                 dropout: float = 0.0, phi_kernel: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"early grounding width {dim} must be divisible by num_heads={num_heads}")
        if num_kernels < 1 or phi_kernel < 1 or phi_kernel % 2 == 0:
            raise ConfigError(f"early grounding needs num_kernels >= 1 and an odd phi_kernel, got "
                              f"{num_kernels}, {phi_kernel}")
        ffn_dim = ffn_dim or 4 * dim
        self.num_kernels = num_kernels
        self.attn_f = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)  # MCA(f, g)
        self.attn_g = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)  # MCA(g, f)
        self.norm_f1, self.norm_f2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.norm_g1, self.norm_g2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn_f = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                   nn.Linear(ffn_dim, dim))
        self.ffn_g = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                   nn.Linear(ffn_dim, dim))
        self.kernel_fc = nn.Linear(dim, dim)  # pooled word -> theta_k
        self.phi = nn.Conv2d(num_kernels, dim, phi_kernel, padding=phi_kernel // 2)
        self.bn = nn.BatchNorm2d(dim)

    def kernels(self, words: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """g' [B, L, D] -> Theta [B, K, D]."""
        return self.kernel_fc(adaptive_word_pool(words, pad_mask, self.num_kernels))

    def forward(self, f: torch.Tensor, words: torch.Tensor, pad_mask: torch.Tensor,
                pos: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """f [B*T, D, h, w]; words [B, L, D]; pad_mask bool [B, L] (True = pad); pos [1, h*w, D] or None.
        Returns (f_early [B*T, D, h, w], g' [B, L, D])."""
        g = self.ground(f, words, pad_mask, pos)
        return g.f_early, g.words

    def ground(self, f: torch.Tensor, words: torch.Tensor, pad_mask: torch.Tensor,
               pos: Optional[torch.Tensor] = None) -> Grounding:
        """As forward, plus the kernel responses."""
        bt, d, h, w = f.shape
        b = words.shape[0]
        if bt % b or words.shape[2] != d:
            raise ConfigError(f"early grounding got visual {tuple(f.shape)} for words {tuple(words.shape)}: "
                              "expected [B*T, D, h, w] and [B, L, D]")
        t = bt // b
        tokens = f.flatten(2).transpose(1, 2).reshape(b, t * h * w, d)  # [B, T*h*w, D]
        pos_tokens = 0 if pos is None else pos.repeat(1, t, 1)  # [1, T*h*w, D]
        # eq. 4: visual tokens attend to the words
        att_f, _ = self.attn_f(tokens + pos_tokens, words, words, key_padding_mask=pad_mask, need_weights=False)
        h_f = self.norm_f1(att_f + tokens)
        f2 = self.norm_f2(self.ffn_f(h_f) + h_f)  # f' [B, T*h*w, D]
        # eq. 5: words attend to the (original) visual tokens of their clip
        att_g, _ = self.attn_g(words, tokens + pos_tokens, tokens, need_weights=False)
        h_g = self.norm_g1(att_g + words)
        g2 = self.norm_g2(self.ffn_g(h_g) + h_g)  # g' [B, L, D]
        # eq. 6: K dynamic 1x1 kernels on f', concatenated, phi (K -> D), residual, BN
        theta = self.kernels(g2, pad_mask)  # [B, K, D]
        resp = torch.bmm(f2, theta.transpose(1, 2))  # [B, T*h*w, K]
        resp = resp.reshape(bt, h, w, self.num_kernels).permute(0, 3, 1, 2)  # [B*T, K, h, w]
        f2_map = f2.reshape(bt, h * w, d).transpose(1, 2).reshape(bt, d, h, w)  # [B*T, D, h, w]
        f_early = self.bn(self.phi(resp) + f2_map)
        return Grounding(f_early, g2, resp)
