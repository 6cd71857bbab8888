"""Checkpoints: atomic writes, weights_only loading, strict keys with a readable error, model loading."""
import random

import numpy as np
import pytest
import torch

from rvos.errors import ConfigError
from rvos.train.checkpoint import (atomic_torch_save, checkpoint_path, load_checkpoint, load_model_from_checkpoint,
                                   rng_state, set_rng_state)
from rvos.train.loop import Trainer
from train_helpers import MaskMethod, tiny_records, tiny_train_config


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle")


def test_atomic_save_leaves_no_partial_file(tmp_path):
    target = tmp_path / "ck.pt"
    atomic_torch_save({"a": torch.ones(2)}, target)
    with pytest.raises(RuntimeError):
        atomic_torch_save({"a": torch.zeros(2), "b": Unpicklable()}, target)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left, old checkpoint intact
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.ones(2))


def test_rng_state_round_trip_through_weights_only(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    atomic_torch_save({"rng": rng_state()}, tmp_path / "r.pt")
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    t = Trainer(tiny_train_config(steps=1), out, records=tiny_records(1), method_factory=lambda m: MaskMethod(m))
    t.fit()
    return out, t


def test_load_model_from_checkpoint(trained):
    out, t = trained
    model, cfg = load_model_from_checkpoint(checkpoint_path(out))
    assert not model.training and cfg.model == t.cfg.model and cfg.loop.steps == 1
    for k, v in t.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    ck = load_checkpoint(checkpoint_path(out))
    assert ck["format"] == "rvos-checkpoint-v1" and set(ck) >= {"optimizer", "scheduler", "rng", "data_state", "epoch"}


def test_mismatching_config_names_file_and_keys(trained, tmp_path):
    out, _ = trained
    ck = load_checkpoint(checkpoint_path(out))
    ck["config"]["model"]["dim"] = 32
    torch.save(ck, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"other\.pt.*(shape mismatch|missing)"):
        load_model_from_checkpoint(tmp_path / "other.pt")
    ck = load_checkpoint(checkpoint_path(out))
    ck["model"].pop(next(iter(ck["model"])))
    torch.save(ck, tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="missing keys"):
        load_model_from_checkpoint(tmp_path / "missing.pt")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="missing checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ConfigError, match="trunc.pt"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ConfigError, match="not an rvos checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_frozen_pretrained_encoders_are_left_out_and_refilled_on_load(tmp_path):
    import torch

    from rvos.models import build_model
    from rvos.models.config import ModelConfig
    from rvos.train.checkpoint import compact_state, load_state_strict, omitted_prefixes
    from rvos.errors import ConfigError

    assert omitted_prefixes(ModelConfig()) == ["vision.", "text."]  # Lite0 ImageNet + MiniLM, both frozen
    assert omitted_prefixes(ModelConfig(vision_frozen=False, text_frozen=False)) == []  # trained: kept
    assert omitted_prefixes(ModelConfig(vision_pretrained=False)) == ["text."]  # random init cannot be rebuilt
    assert omitted_prefixes(None) == []
    cfg = ModelConfig(vision="tiny", vision_pretrained=False, text="tiny", dim=16, num_heads=2,
                      fpn_dims=(16, 16, 8), mask_dim=8, dyn_hidden=8)
    torch.manual_seed(0)
    a = build_model(cfg)
    state = compact_state(a, ["vision."])
    assert state and not any(k.startswith("vision.") for k in state)
    torch.manual_seed(1)
    b = build_model(cfg)
    vision_before = {k: v.clone() for k, v in b.vision.state_dict().items()}
    load_state_strict(b, state, tmp_path / "x.pt", omitted=["vision."])
    for k, v in b.state_dict().items():
        if k.startswith("vision."):
            assert torch.equal(v, vision_before[k[len("vision."):]])  # kept its own
        else:
            assert torch.equal(v, a.state_dict()[k])  # loaded
    with pytest.raises(ConfigError, match="missing keys"):
        load_state_strict(b, state, tmp_path / "x.pt")  # without `omitted` the gap is an error
