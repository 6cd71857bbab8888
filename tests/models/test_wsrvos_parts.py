"""WSRVOS model parts: bidirectional feature selection (top-k tokens and words, trainable through the straight-
through gate) and the expression scorer (mask-pooled language-free proposals matched with sentences)."""
from __future__ import annotations

import pytest
import torch

from model_helpers import TEXTS, tiny
from rvos.errors import ConfigError
from rvos.models import ModelConfig
from rvos.models.expression_scorer import ExpressionScorer
from rvos.models.selection import BidirectionalSelection


def test_selection_keeps_topk_tokens_and_real_words_and_trains_its_projections():
    torch.manual_seed(0)
    sel = BidirectionalSelection(8, topk_visual=3, topk_words=2)
    f, r = torch.randn(2, 12, 8), torch.randn(2, 5, 8)
    pad = torch.tensor([[False] * 5, [False, True, True, True, True]])  # the second sentence has one word
    f2, r2, s = sel(f, r, pad)
    assert s.visual.detach().sum(-1).tolist() == pytest.approx([3.0, 3.0])
    assert s.words.detach().sum(-1).tolist() == pytest.approx([2.0, 1.0]) and float(s.words[1, 1:].abs().sum()) == 0
    chosen = s.visual_score.topk(3, -1).indices
    assert torch.allclose(s.visual.detach().gather(-1, chosen), torch.ones(2, 3))
    assert torch.allclose(f2, f * (1 + s.visual.detach()[..., None]))  # selected tokens amplified, others kept
    (f2.sum() + r2.sum()).backward()
    for lin in (sel.sent, sel.vis, sel.word, sel.ctx):  # the straight-through gate lets every projection learn
        assert lin.weight.grad is not None and float(lin.weight.grad.abs().sum()) > 0


def test_scorer_pools_the_region_under_the_mask():
    torch.manual_seed(0)
    sc = ExpressionScorer(4)
    plain = torch.zeros(1, 4, 2, 2)
    plain[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # one token carries a feature, the others zero
    logits = torch.full((1, 2, 8, 8), -30.0)
    logits[0, 0, :4, :4] = 30.0  # query 0 covers the top-left token exactly; query 1 nothing
    z = sc.proposals(logits, plain)
    assert torch.allclose(z[0, 0], sc.visual(torch.tensor([1.0, 2.0, 3.0, 4.0])), atol=1e-4)
    toks = sc.tokens(plain)  # [1, 4, D]: every token its own proposal
    assert toks.shape == (1, 4, 4) and torch.allclose(toks[0, 0], z[0, 0], atol=1e-4)
    u = torch.randn(3, 4)
    x = sc.logits_all(z, u)  # [1, 2, 3]
    cos = torch.nn.functional.cosine_similarity(z[0, 0][None], u, dim=-1)
    assert x.shape == (1, 2, 3) and torch.allclose(x[0, 0], sc.log_scale.exp() * cos + sc.bias, atol=1e-5)
    assert torch.allclose(sc.logits(z, u[:1]), x[..., 0], atol=1e-6)  # each row with its own sentence


def test_softmax_pool_is_a_soft_argmax_of_the_mask_whatever_its_level():
    torch.manual_seed(0)
    sc = ExpressionScorer(4, pool="softmax")
    plain = torch.zeros(1, 4, 2, 2)
    plain[0, :, 1, 1] = torch.tensor([4.0, 3.0, 2.0, 1.0])
    logits = torch.zeros(1, 1, 8, 8)
    logits[0, 0, 4:, 4:] = 20.0  # highest on the bottom-right token
    z_high = sc.proposals(logits + 100.0, plain)  # the same mask, saturated: the same pooled feature
    z = sc.proposals(logits, plain)
    assert torch.allclose(z, z_high, atol=1e-5) and torch.allclose(z[0, 0], sc.visual(plain[0, :, 1, 1]), atol=1e-4)
    x = (logits + 100.0).requires_grad_()
    sc.proposals(x, plain).sum().backward()
    sig = ExpressionScorer(4)
    y = (logits + 100.0).requires_grad_()
    sig.proposals(y, plain).sum().backward()
    assert float(y.grad.abs().sum()) == 0.0  # sigmoid pooling: no gradient through a saturated mask
    with pytest.raises(ConfigError, match="expression_pool"):
        ModelConfig(expression_pool="max")


def test_model_scores_are_the_scorer_match_and_match_sentences_agrees():
    model = tiny(head="multi", num_queries=3, selection=True, expression_scorer=True)
    frames = torch.rand(2, 2, 3, 64, 64)
    out = model(frames, TEXTS)
    z = out.extras["proposal_features"]  # [B, T, Q, D]
    assert z.shape[:3] == (2, 2, 3) and out.extras["selected_visual"].shape[:2] == (2, 2)
    x = model.match_sentences(z, [TEXTS[0], "a blue dog", TEXTS[1]])  # [B, T, Q, 3]
    assert torch.allclose(x[0, ..., 0], out.scores[0], atol=1e-5)  # clip 0 with its own sentence
    assert torch.allclose(x[1, ..., 2], out.scores[1], atol=1e-5)
    out.scores.sum().backward()  # the scores reach the mask head through the pooling weights
    head_grads = [p.grad for p in model.head.parameters() if p.grad is not None]
    assert head_grads and any(float(g.abs().sum()) > 0 for g in head_grads)


def test_config_checks_and_plain_model_cannot_match():
    with pytest.raises(ConfigError, match="selection_topk"):
        ModelConfig(selection_topk_visual=0)
    with pytest.raises(ConfigError, match="expression_scorer"):
        tiny().match_sentences(torch.zeros(1, 1, 1, 32), ["a dog"])
