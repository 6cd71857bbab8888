"""Fixtures of the inference tests; the stand-in model and videos live in infer_helpers.py."""
from __future__ import annotations

import pytest

from infer_helpers import make_video


@pytest.fixture
def video():
    return make_video()
