"""Shared fixtures. Real data lives in ../shared/data beside the checkout (RVOS_SHARED_DATA overrides)."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RVOS_SHARED_DATA", REPO.parent / "shared" / "data")).resolve()
DAVIS_SAMPLE = SHARED_DATA / "davis-sample"
TEXT_DATA = SHARED_DATA / "text"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass
    yield


@pytest.fixture(scope="session")
def davis_sample() -> Path:
    assert DAVIS_SAMPLE.is_dir(), f"the DAVIS sample is expected at {DAVIS_SAMPLE} (../shared/data beside the repo)"
    return DAVIS_SAMPLE


@pytest.fixture(scope="session")
def text_data() -> Path:
    assert TEXT_DATA.is_dir(), f"the real sentence files are expected at {TEXT_DATA}"
    return TEXT_DATA


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny model (random weights) in the trainer's checkpoint format (what `rvos demo` writes)."""
    import torch

    from rvos.models import ModelConfig, build_model
    from rvos.train.checkpoint import FORMAT, atomic_torch_save
    from rvos.train.config import TrainConfig, to_dict

    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(vision="tiny", text="tiny"))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    atomic_torch_save({"format": FORMAT, "config": to_dict(cfg), "model": build_model(cfg.model).state_dict()}, path)
    return path
