"""Mixed precision: every method's training step runs under autocast (bf16, as `loop.amp=auto` picks on a recent
GPU). CI has no GPU, so the step runs under CPU autocast here: the same code path (autocast region, loss parts
in reduced precision, scaler, clipping), not the same kernels."""
import pytest
import torch

from rvos.errors import ConfigError
from rvos.train.loop import Trainer, amp_dtype_for, train_step
from train_helpers import tiny_records, tiny_train_config

METHODS = {
    "simrvos": ({}, {}),
    "simrvos-multi": ({"head": "multi", "num_queries": 3}, {}),
    "wrvos-multi": ({"head": "multi", "num_queries": 3, "blcl": True}, {"regime": "mask_box"}),
    "wrvos": ({"blcl": True}, {"regime": "mask_box"}),
    "r2vos": ({"r2": True, "r2_reconstruct_from": "visual_attn"}, {"negative_ratio": 1.0}),
    "r2vos-multi": ({"head": "multi", "num_queries": 3, "r2": True}, {"negative_ratio": 1.0}),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_train_step_under_bf16_autocast(name, tmp_path):
    model_kw, data_kw = METHODS[name]
    cfg = tiny_train_config()
    cfg.method.name = name.split("-")[0]
    cfg.method.params = {}
    for k, v in model_kw.items():
        setattr(cfg.model, k, v)
    for k, v in data_kw.items():
        setattr(cfg.data, k, v)
    torch.manual_seed(0)
    t = Trainer(cfg, tmp_path, records=tiny_records())
    before = [p.detach().clone() for p in t.method.parameters() if p.requires_grad]
    batch = next(iter(t.loader)).to(t.device)
    dtypes = set()  # output dtypes of the model's linear layers and convolutions during the step
    hooks = [m.register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype)) for m in t.method.modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    parts = train_step(t.method, batch, t.optimizer, t.scheduler, t.scaler, torch.bfloat16, cfg.optim.grad_clip)
    for h in hooks:
        h.remove()
    assert torch.bfloat16 in dtypes  # the step ran under autocast
    assert parts["loss"] == parts["loss"] and abs(parts["loss"]) < 1e6  # finite
    after = [p.detach() for p in t.method.parameters() if p.requires_grad]
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the step moved the weights


def test_amp_dtype_choice():
    assert amp_dtype_for("auto", torch.device("cpu")) is None  # CPU trains in fp32
    assert amp_dtype_for("bf16", torch.device("cpu")) is None
    with pytest.raises(ConfigError, match="loop.amp"):
        amp_dtype_for("fp8", torch.device("cuda"))
    assert amp_dtype_for("fp16", torch.device("cuda")) is torch.float16
    assert amp_dtype_for("off", torch.device("cuda")) is None
