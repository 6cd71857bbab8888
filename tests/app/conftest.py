"""Fixtures of the web-demo tests: a small WebM the browser plays (the tiny checkpoint is tests/conftest.py's)."""
from __future__ import annotations

import numpy as np
import pytest


def square_frames(n: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    """uint8 [n, h, w, 3]: a bright square moving right over a dark background."""
    frames = np.full((n, h, w, 3), 30, np.uint8)
    for t in range(n):
        frames[t, 12:28, 4 + 6 * t: 20 + 6 * t] = 230
    return frames


@pytest.fixture(scope="session")
def small_webm(tmp_path_factory):
    from rvos.app.samples import write_webm

    return write_webm(square_frames(), tmp_path_factory.mktemp("vid") / "square.webm", fps=6)


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    from rvos.train.checkpoint import load_model_from_checkpoint

    model, _ = load_model_from_checkpoint(tiny_checkpoint)
    return model
