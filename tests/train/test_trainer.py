"""The trainer on a tiny model: the loss decreases, resume is exact, files are written by rank 0."""
import json

import pytest
import torch

from rvos.train.checkpoint import checkpoint_path, load_checkpoint
from rvos.train.loop import Trainer, train
from train_helpers import MaskMethod, tiny_records, tiny_train_config


def params(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.state_dict().values() if p.is_floating_point()])


def make(cfg, out, **kw) -> Trainer:
    return Trainer(cfg, out, records=tiny_records(), method_factory=lambda m: MaskMethod(m), **kw)


def test_loss_decreases_and_files_written(tmp_path):
    cfg = tiny_train_config(steps=10, checkpoint_every=5, log_every=2, plot=True)
    cfg.data.clip.photometric = 0.0
    cfg.data.clip.flip_prob = 0.0
    cfg.data.clip.negatives = False
    seen = []
    t = Trainer(cfg, tmp_path, records=tiny_records(), eval_fn=lambda model: seen.append(model.training) or {"score": 0.5})
    assert type(t.method).__name__ == "SimRVOS"  # method.name from the config
    first = [t.method(b)["loss"].item() for b in [next(iter(t.loader)).to(t.device)]][0]
    t.fit()
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [l["loss"] for l in lines if "loss" in l]
    assert len(losses) == 5 and losses[-1] < 0.9 * first and losses[-1] < losses[0]
    assert [l for l in lines if "eval/score" in l] == [{"step": 10, "eval/score": 0.5}] and seen == [False]  # eval at the end, model in eval mode
    assert (tmp_path / "curves.png").stat().st_size > 1000 and (tmp_path / "config.yaml").is_file()
    ck = load_checkpoint(checkpoint_path(tmp_path))
    assert ck["step"] == 10 and ck["config"]["loop"]["steps"] == 10


def test_resume_is_exact(tmp_path):
    """2N steps in one go == N steps, stop, resume, N more (epochs cross: 8 items / batch 2 = 4 per epoch).
    MaskMethod has a parameter outside the model: the method's own state resumes too."""
    full = make(tiny_train_config(steps=6, checkpoint_every=3), tmp_path / "a")
    full.fit()
    part = make(tiny_train_config(steps=3, checkpoint_every=3), tmp_path / "b")
    part.fit()
    torch.manual_seed(123)  # disturb the RNG: resume must restore it
    rest = make(tiny_train_config(steps=6, checkpoint_every=3), tmp_path / "b", resume=True)
    assert (rest.step, rest.epoch, rest.pos) == (3, 0, 3)
    rest.fit()
    assert torch.allclose(params(full.method), params(rest.method), atol=1e-6, rtol=0)
    assert "scale" in load_checkpoint(checkpoint_path(tmp_path / "b"))["method"]
    assert rest.optimizer.state_dict()["state"][0]["step"] == full.optimizer.state_dict()["state"][0]["step"]
    steps = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_killed_run_loses_at_most_checkpoint_every(tmp_path):
    class Kill(Exception):
        pass

    class KillAt:
        def after_step(self, t, parts, batch):
            if t.step == 3:
                raise Kill

        def at_end(self, t):
            pass

    cfg = tiny_train_config(steps=4, checkpoint_every=2)
    t = make(cfg, tmp_path)
    t.hooks.insert(0, KillAt())  # dies after step 3, before its checkpoint hook
    with pytest.raises(Kill):
        t.fit()
    assert load_checkpoint(checkpoint_path(tmp_path))["step"] == 2
    rest = make(cfg, tmp_path, resume=True)
    rest.fit()
    full = make(cfg, tmp_path / "ref")
    full.fit()
    assert torch.allclose(params(full.method), params(rest.method), atol=1e-6, rtol=0)


def test_step_decay_schedule(tmp_path):
    cfg = tiny_train_config(steps=3)
    cfg.optim.decay_steps, cfg.optim.gamma = [2], 0.1
    t = make(cfg, tmp_path)
    t.fit()
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(3e-4)


def test_train_function_with_injected_parts(tmp_path):
    last = train(tiny_train_config(steps=2), tmp_path, records=tiny_records(), method_factory=lambda m: MaskMethod(m))
    assert set(last) == {"loss", "bce", "dice"}
