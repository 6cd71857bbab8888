"""Predictor(amp=True) (`rvos segment --amp`): the real model family under autocast (bf16 on CPU, fp16 on CUDA)
gives the same masks' logits as fp32 up to reduced-precision rounding, for every head and the presence head."""
from __future__ import annotations

import pytest
import torch

from infer_helpers import make_video
from rvos.infer.geometry import Geometry
from rvos.infer.predictor import Predictor
from rvos.models import ModelConfig, build_model


@pytest.mark.parametrize("kw", [{}, {"head": "multi", "num_queries": 3}, {"r2": True, "r2_reconstruct_from": "visual_attn"}])
def test_amp_decode_matches_fp32(kw):
    torch.manual_seed(0)
    model = build_model(ModelConfig(vision="tiny", text="tiny", dim=32, **kw)).eval()
    video = make_video()
    geo = Geometry.create(video.height, video.width, None, 32)
    x = geo.to_input([video.frame(i) for i in range(4)])
    text = model.encode_text(["the bright square"])
    outs = []
    for amp in (False, True):
        p = Predictor(model, amp=amp)
        with torch.no_grad():
            outs.append(p.decode(p.encode(x), text, 4))
    (l32, s32, a32, _), (l16, s16, a16, _) = outs
    assert l16.dtype == torch.float32 and l16.shape == l32.shape  # handed on in fp32 whatever ran inside
    scale = l32.abs().max()
    assert (l16 - l32).abs().max() < 0.05 * scale and not torch.equal(l16, l32)  # bf16 rounding, nothing more
    assert (a32 is None) == (a16 is None) == ("r2" not in kw)
    if a32 is not None:
        assert abs(a16 - a32) < 0.05 * max(1.0, abs(a32))
