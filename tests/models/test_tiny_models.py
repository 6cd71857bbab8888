"""Tiny forward/backward for every model variant, cached features, frame independence, config errors."""
import pytest
import torch

from rvos.errors import ConfigError
from model_helpers import TEXTS, tiny
from rvos.models import ModelConfig, TextFeatures, build_model
from rvos.models.heads import apply_dynamic_mlp, dynamic_layer_shapes, num_dynamic_params


@pytest.mark.parametrize("head", ["single", "multi"])
def test_forward_shapes(head):
    model = tiny(head=head, num_queries=4)
    out = model(torch.rand(2, 3, 3, 64, 96), TEXTS)
    q = 1 if head == "single" else 4
    assert out.mask_logits.shape == (2, 3, q, 16, 24)
    assert out.scores.shape == (2, 3, q)
    assert out.filters.shape[:3] == (2, 3, q)
    assert out.mask_features.shape == (2, 3, model.config.mask_dim, 16, 24)
    assert out.sentence.shape == (2, 32)
    if head == "multi":
        assert out.boxes.shape == (2, 3, 4, 4)
        assert out.boxes.min() >= 0 and out.boxes.max() <= 1
    else:
        assert out.boxes is None
    assert model.config.head == head


@pytest.mark.parametrize("head", ["single", "multi"])
def test_gradients_reach_trainable_parts_not_frozen(head):
    model = tiny(head=head, vision_frozen=True, text_frozen=False)
    model.train()
    out = model(torch.rand(1, 2, 3, 32, 48), TEXTS[:1])
    (out.mask_logits.sum() + out.scores.sum() + (out.boxes.sum() if out.boxes is not None else 0)).backward()
    for name, p in model.named_parameters():
        if name.startswith("vision."):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name
    # a frozen encoder stays in eval mode (BatchNorm statistics untouched) while the rest trains
    assert not model.vision.training and model.fusion.training


def test_frozen_text_has_no_gradients_and_caches():
    model = tiny(text_frozen=True)
    assert all(not p.requires_grad for p in model.text.parameters())
    a = model.encode_text(["a dog", "a cat jumping"])
    b = model.encode_text(["a cat jumping"])
    assert torch.equal(a.words[1], b.words[0]) and torch.equal(a.sentence[1], b.sentence[0])
    assert set(model.text._cache) == {"a dog", "a cat jumping"}
    assert a.pad_mask.tolist() == [[False, False, True], [False, False, False]]


def test_text_cache_is_lru():
    model = build_model(ModelConfig(vision="tiny", text="tiny", dim=32, text_cache_size=2))
    model.encode_text(["one"])
    model.encode_text(["two"])
    model.encode_text(["one"])  # "one" is now the most recent
    model.encode_text(["three"])
    assert list(model.text._cache) == ["one", "three"]


def test_cached_features_give_the_same_output():
    model = tiny(head="multi").eval()
    frames = torch.rand(2, 2, 3, 32, 64)
    with torch.no_grad():
        direct = model(frames, TEXTS)
        feats = [f.reshape(2, 2, *f.shape[1:]) for f in model.encode_frames(frames.flatten(0, 1))]
        cached = model(None, model.encode_text(TEXTS), features=feats)
    for a, b in [(direct.mask_logits, cached.mask_logits), (direct.scores, cached.scores), (direct.boxes, cached.boxes)]:
        assert torch.allclose(a, b, atol=1e-6)


def test_frames_are_independent():
    """A frame's output does not depend on the other frames of its clip (the predictor streams frames)."""
    model = tiny().eval()
    frames = torch.rand(1, 3, 3, 32, 64)
    with torch.no_grad():
        clip = model(frames, TEXTS[:1]).mask_logits
        one = model(frames[:, 1:2], TEXTS[:1]).mask_logits
    assert torch.allclose(clip[:, 1:2], one, atol=1e-5)


def test_dynamic_mlp_matches_conv():
    shapes = dynamic_layer_shapes(3, 4, 3)
    params = torch.randn(2, 1, num_dynamic_params(3, 4, 3))
    x = torch.randn(2, 3, 5, 6)
    got = apply_dynamic_mlp(x.flatten(2)[:, None], params, shapes).reshape(2, 5, 6)
    for n in range(2):  # reference: the same parameters as real 1x1 convolutions
        y, i = x[n : n + 1], 0
        for k, (o, c) in enumerate(shapes):
            w = params[n, 0, i : i + o * c].reshape(o, c, 1, 1)
            i += o * c
            y = torch.nn.functional.conv2d(y, w, params[n, 0, i : i + o])
            i += o
            y = torch.relu(y) if k < len(shapes) - 1 else y
        assert torch.allclose(got[n], y[0, 0], atol=1e-5)


def test_config_round_trip_and_errors():
    cfg = ModelConfig(vision="tiny", text="tiny", head="multi", num_queries=3)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown model config keys"):
        ModelConfig.from_dict({"vision": "tiny", "visoin_frozen": False})
    with pytest.raises(ConfigError, match="vision"):
        ModelConfig(vision="resnet50")


def test_empty_sentence_is_a_config_error():
    model = tiny()
    with pytest.raises(ConfigError, match="empty sentence"):
        model.encode_text(["a dog", "   "])
    with pytest.raises(ConfigError):
        model(torch.rand(1, 1, 3, 32, 32), [""])


def test_text_features_type():
    feats = tiny().encode_text(TEXTS)
    assert isinstance(feats, TextFeatures)
    assert feats.words.shape[0] == 2 and feats.sentence.shape == (2, feats.words.shape[-1])
