"""Feature cache: cached features equal a direct encode of the clip's frames (original and flipped)."""
import pytest
import torch

from rvos.data.clips import ClipConfig, ClipDataset, collate
from rvos.errors import ConfigError
from rvos.models import build_model
from rvos.train.feature_cache import build_feature_cache
from rvos.train.loop import Trainer
from train_helpers import MaskMethod, tiny_model_config, tiny_records, tiny_train_config


@pytest.fixture(scope="module")
def frozen_model():
    torch.manual_seed(0)
    return build_model(tiny_model_config(frozen=True)).eval()


def _check(cache, model):
    cfg = ClipConfig(num_frames=3, size=(32, 48), flip_prob=0.5, photometric=0.3, resize_shorter=[20], crop_min_scale=0.5)
    ds = ClipDataset(tiny_records(), cfg, features=cache)
    flips = set()
    for i in range(len(ds)):
        s = ds[i]
        flips.add(s.flipped)
        with torch.no_grad():
            direct = model.encode_frames(s.frames)  # the clip's own frames: no jitter, no crop with a cache
        for c, d in zip(s.features, direct):
            assert c.shape == d.shape and c.dtype == torch.float32
            assert torch.allclose(c, d, atol=2e-3 * max(1.0, d.abs().max().item()), rtol=1e-2)
    assert flips == {False, True}
    b = collate([ds[0], ds[1]])
    assert [f.shape[:2] for f in b.features] == [(2, 3)] * 4


def test_memory_cache_equals_direct_encode(frozen_model):
    cache = build_feature_cache(frozen_model, tiny_records(), (32, 48))
    assert len(cache) == 2 * 6 * 2  # videos x frames x {original, flipped}
    _check(cache, frozen_model)


def test_disk_cache_is_reused(frozen_model, tmp_path, monkeypatch):
    build_feature_cache(frozen_model, tiny_records(), (32, 48), folder=tmp_path)
    calls = []
    real = frozen_model.encode_frames
    monkeypatch.setattr(frozen_model, "encode_frames", lambda x: calls.append(len(x)) or real(x))
    cache = build_feature_cache(frozen_model, tiny_records(), (32, 48), folder=tmp_path)
    assert calls == [1]  # one probe frame, not the whole dataset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "level0.npy", "level1.npy", "level2.npy", "level3.npy"]
    _check(cache, frozen_model)


def test_trainer_with_feature_cache(tmp_path):
    cfg = tiny_train_config(steps=2, feature_cache="memory")
    cfg.model.vision_frozen = True
    t = Trainer(cfg, tmp_path, records=tiny_records(), method_factory=lambda m: MaskMethod(m))
    b = next(iter(t.loader))
    assert b.features is not None and b.features[0].shape[:2] == (2, 3)
    assert torch.isfinite(torch.tensor(t.fit()["loss"]))
    cfg.model.vision_frozen = False
    with pytest.raises(ConfigError, match="frozen"):
        Trainer(cfg, tmp_path / "b", records=tiny_records(), method_factory=lambda m: MaskMethod(m))
