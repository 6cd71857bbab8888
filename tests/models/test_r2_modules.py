"""R2-VOS modules: early grounding (eq. 4-6), text reconstruction + fusion, consensus head and loss."""
import math

import pytest
import torch

from rvos.errors import ConfigError
from rvos.models.consensus import ConsensusHead, consensus_loss, gate_masks, presence_gate
from rvos.models.early_grounding import EarlyGrounding, adaptive_word_pool
from rvos.models.text_reconstruction import TextFusion, TextReconstruction

B, T, D, H, W, L = 2, 3, 16, 4, 5, 6


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(B * T, D, H, W, generator=g, requires_grad=True)
    words = torch.randn(B, L, D, generator=g, requires_grad=True)
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    return f, words, pad


def test_adaptive_word_pool_by_hand():
    words = torch.arange(12, dtype=torch.float32).reshape(2, 6, 1)  # sentence 0: 4 real words 0..3; 1: 6..11
    pad = torch.tensor([[False] * 4 + [True] * 2, [False] * 6])
    pooled = adaptive_word_pool(words, pad, 3)[..., 0]
    # 4 words into 3 bins: [0,2) [1,3) [2,4) -> 0.5 1.5 2.5; 6 words: [0,2) [2,4) [4,6) -> 6.5 8.5 10.5
    assert pooled.tolist() == [[0.5, 1.5, 2.5], [6.5, 8.5, 10.5]]
    # more bins than words repeats words (bins [0,1) [0,2) [1,2) for 2 words into 3), padding never enters
    two = adaptive_word_pool(torch.tensor([[[1.0], [3.0], [99.0]]]), torch.tensor([[False, False, True]]), 3)
    assert two[0, :, 0].tolist() == [1.0, 2.0, 3.0]
    same = torch.nn.functional.adaptive_avg_pool1d(words[1:, :, 0][None], 3)[0, 0]
    assert pooled[1].tolist() == same.tolist()  # the bins of torch's adaptive pooling


def test_early_grounding_shapes_and_gradients():
    torch.manual_seed(0)
    eg = EarlyGrounding(D, num_heads=2, num_kernels=3)
    f, words, pad = inputs()
    pos = torch.randn(1, H * W, D)
    f_early, g2 = eg(f, words, pad, pos)
    assert f_early.shape == (B * T, D, H, W) and g2.shape == (B, L, D)
    (f_early * torch.randn_like(f_early)).sum().backward()  # not a norm: BN would make that constant
    assert f.grad.abs().sum() > 0 and words.grad.abs().sum() > 0
    assert words.grad[0, 4:].abs().sum() == 0  # padding words are masked out everywhere f_early depends on
    for name, p in eg.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_early_grounding_is_eq6_on_its_parts():
    """f_early = BN(phi(theta^T f') + f') with f' and theta recomputed from the submodules (eval-mode BN)."""
    torch.manual_seed(1)
    eg = EarlyGrounding(D, num_heads=2, num_kernels=2).eval()
    eg.bn.running_mean.uniform_(-0.1, 0.1)
    f, words, pad = inputs(1)
    with torch.no_grad():
        f_early, g2 = eg(f, words, pad)
        tok = f.flatten(2).transpose(1, 2).reshape(B, T * H * W, D)
        h_f = eg.norm_f1(eg.attn_f(tok, words, words, key_padding_mask=pad)[0] + tok)
        f2 = eg.norm_f2(eg.ffn_f(h_f) + h_f)
        theta = eg.kernel_fc(adaptive_word_pool(g2, pad, 2))  # [B, K, D]
        b, t, y, x = 1, 2, 3, 4
        token = f2[b, t * H * W + y * W + x]  # f' at clip 1, frame 2, cell (3, 4)
        resp = theta[b] @ token  # [K]
        pre = eg.phi.weight[:, :, 0, 0] @ resp + eg.phi.bias + token
        expected = (pre - eg.bn.running_mean) / torch.sqrt(eg.bn.running_var + eg.bn.eps) * eg.bn.weight + eg.bn.bias
        assert torch.allclose(f_early[b * T + t, :, y, x], expected, atol=1e-5)


def test_early_grounding_clip_attention_mixes_frames():
    """Words attend to every frame of their clip (one kernel set per clip): changing frame 0 changes frame 1's
    f_early through the kernels, but never another clip's."""
    torch.manual_seed(2)
    eg = EarlyGrounding(D, num_heads=2, num_kernels=2).eval()
    f, words, pad = inputs(2)
    with torch.no_grad():
        a, _ = eg(f, words, pad)
        f2 = f.clone()
        f2[0] += 1.0
        b, _ = eg(f2, words, pad)
    assert not torch.allclose(a[1], b[1]) and torch.allclose(a[T:], b[T:])


def test_text_reconstruction_and_fusion():
    torch.manual_seed(3)
    rec = TextReconstruction(D, num_heads=2, num_layers=2)
    f_early = torch.randn(B * T, D, H, W, requires_grad=True)
    e_rec = rec(f_early, B, pos=torch.randn(1, H * W, D))
    assert e_rec.shape == (B, D)
    e = torch.randn(B, D, requires_grad=True)
    fused = TextFusion(D, mode="concat")(e, e_rec)
    assert fused.shape == (B, D)
    (fused * torch.randn_like(fused)).sum().backward()
    assert f_early.grad.abs().sum() > 0 and e.grad.abs().sum() > 0 and rec.query.grad.abs().sum() > 0
    add = TextFusion(D)  # zero-initialised: starts as LN(e)
    assert torch.allclose(add(e, e_rec), torch.nn.functional.layer_norm(e, (D,)), atol=1e-6)
    with pytest.raises(ConfigError):
        TextFusion(D, mode="sum")
    with pytest.raises(ConfigError):
        rec(torch.randn(5, D, H, W), B)


def test_consensus_head_shapes_and_gradients():
    torch.manual_seed(4)
    head = ConsensusHead(D, hidden=8)
    e, e_rec = torch.randn(B, D, requires_grad=True), torch.randn(B, D, requires_grad=True)
    a = head(e, e_rec)
    assert a.shape == (B,)
    consensus_loss(a, torch.tensor([True, False])).backward()
    assert e.grad.abs().sum() > 0 and e_rec.grad.abs().sum() > 0


def test_consensus_loss_by_hand():
    logits = torch.tensor([0.0, 2.0, -1.0])
    labels = torch.tensor([True, False, False])
    # -log sigmoid(0) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2); -log(1 - sigmoid(-1)) = log(1 + e^-1)
    expected = (math.log(2) + math.log(1 + math.e ** 2) + math.log(1 + math.e ** -1)) / 3
    assert float(consensus_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)
    weighted = (3 * math.log(2) + math.log(1 + math.e ** 2) + math.log(1 + math.e ** -1)) / 3
    assert float(consensus_loss(logits, labels, pos_weight=3.0)) == pytest.approx(weighted, rel=1e-6)
    with pytest.raises(ConfigError):
        consensus_loss(logits, labels[:2])


def test_presence_gate_eq12():
    a = torch.tensor([1.5, -0.2, 0.0])
    assert presence_gate(a).tolist() == [True, False, True]
    masks = torch.zeros(3, 2, 1, 2, 2)
    gated = gate_masks(masks, a)
    assert (gated[0] == 0).all() and torch.isneginf(gated[1]).all() and (gated[2] == 0).all()
    assert presence_gate(a, threshold=0.8).tolist() == [True, False, False]  # sigmoid(1.5) = 0.82


def test_consensus_match_features_by_hand():
    head = ConsensusHead(2, hidden=1, features="match")
    with torch.no_grad():
        head.fc1.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, -1.0, -1.0]]))  # sum(e*e') - sum|e-e'|
        head.fc1.bias.zero_()
        head.fc2.weight.fill_(2.0)
        head.fc2.bias.fill_(-1.0)
    e, e_rec = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 1.0]])
    # e*e' = (3, 2) -> 5; |e-e'| = (2, 1) -> 3; relu(5 - 3) = 2; 2 * 2 - 1 = 3
    assert float(head(e, e_rec).detach()[0]) == pytest.approx(3.0)
    with pytest.raises(ConfigError):
        ConsensusHead(2, features="dot")


def test_response_gate_by_hand():
    from rvos.models.text_reconstruction import ResponseGate

    gate = ResponseGate(2)
    with torch.no_grad():
        gate.conv.weight.copy_(torch.tensor([1.0, -2.0]).view(1, 2, 1, 1))
        gate.conv.bias.fill_(0.5)
    resp = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # token 0: (1, 0), token 1: (0, 1)
    assert torch.allclose(gate(resp)[0, 0, 0], torch.sigmoid(torch.tensor([1.5, -1.5])))


def test_response_gate_as_attention_bias():
    """mode "bias": the tokens pass unscaled and log(gate) goes to the attention; a token whose gate is ~0 is left
    out of e' exactly as if it were not in the memory, and a uniform gate changes nothing, whatever its value."""
    from rvos.models.text_reconstruction import ResponseGate

    gate = ResponseGate(1, mode="bias")
    with torch.no_grad():
        gate.conv.weight.fill_(1.0)
        gate.conv.bias.zero_()
    visual = torch.randn(1, D, 1, 2)
    memory, bias = gate.read(visual, torch.tensor([0.0, -60.0]).view(1, 1, 1, 2))
    assert torch.equal(memory, visual)
    assert torch.allclose(bias.exp()[0, 0, 0], torch.sigmoid(torch.tensor([0.0, -60.0])))
    torch.manual_seed(0)
    rec = TextReconstruction(D, num_heads=2).eval()
    with torch.no_grad():
        only_first = rec(visual[..., :1], 1)
        assert torch.allclose(rec(memory, 1, bias=bias), only_first, atol=1e-5)
        assert torch.allclose(rec(visual, 1, bias=torch.full((1, 1, 1, 2), -3.0)), rec(visual, 1), atol=1e-5)
        scale = ResponseGate(1)
        scale.conv.bias.fill_(0.0)
        scaled, none = scale.read(visual, torch.zeros(1, 1, 1, 2))
        assert none is None and torch.allclose(scaled, visual * 0.5)  # mode "scale": tokens x sigmoid(0)
    with pytest.raises(ConfigError, match="gate mode"):
        ResponseGate(1, mode="mul")


def _r2_model(reconstruct_from: str):
    from model_helpers import tiny

    return tiny(r2=True, r2_reconstruct_from=reconstruct_from).eval()


def test_reconstruction_from_visual_reads_the_sentence_only_through_the_gate():
    frames = torch.rand(1, 2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    sentences = (["a red car"], ["the camel on the left of the tree"])
    early = _r2_model("early")
    with torch.no_grad():
        a, b = (early(frames, s).extras["sentence_rec"] for s in sentences)
    assert not torch.allclose(a, b, atol=1e-4)  # f_early carries the sentence into e'
    visual = _r2_model("visual")
    with torch.no_grad():
        visual.r2.rec_gate.conv.weight.zero_()  # a constant gate: the sentence has no way into e'
        a, b = (visual(frames, s).extras["sentence_rec"] for s in sentences)
        assert torch.allclose(a, b, atol=1e-5)
        other = visual(torch.rand(1, 2, 3, 64, 96, generator=torch.Generator().manual_seed(1)), sentences[0])
    assert not torch.allclose(a, other.extras["sentence_rec"], atol=1e-4)  # ... but the video does
    attn = _r2_model("visual_attn")
    with torch.no_grad():
        attn.r2.rec_gate.conv.weight.zero_()
        attn.r2.rec_gate.conv.bias.fill_(-30.0)  # a closed gate, the same on every token: e' is still read from them
        a, b = (attn(frames, s).extras["sentence_rec"] for s in sentences)
        assert torch.allclose(a, b, atol=1e-5)
        other = attn(torch.rand(1, 2, 3, 64, 96, generator=torch.Generator().manual_seed(1)), sentences[0])
    assert not torch.allclose(a, other.extras["sentence_rec"], atol=1e-4)
    with pytest.raises(ConfigError, match="r2_reconstruct_from"):
        from rvos.models import ModelConfig

        ModelConfig(r2_reconstruct_from="text")
