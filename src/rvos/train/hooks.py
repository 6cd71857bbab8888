"""Hooks around the training step: `after_step(trainer, parts, batch)`, `at_end(trainer)`, optional
`on_resume(trainer)` and `close()`. Only rank 0 writes files or shows progress."""
from __future__ import annotations

import time

import torch


class ProgressHook:
    """tqdm bar with the loss and the speed in clips/s (over all ranks)."""

    def __init__(self):
        self.bar, self.t0, self.n = None, None, 0

    def after_step(self, t, parts: dict, batch) -> None:
        if not (t.dist.main and t.cfg.loop.progress):
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=t.total_steps, initial=t.step - 1, desc="train", dynamic_ncols=True)
            self.t0, self.n = time.perf_counter(), 0
        self.n += batch.size[0] * t.dist.world_size
        speed = self.n / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix(loss=f"{parts['loss']:.4f}", clips_s=f"{speed:.2f}", refresh=False)
        self.bar.update(1)

    def at_end(self, t) -> None:
        pass

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class LogHook:
    """Every `log_every` steps (and at the end): the mean of each loss part since the last line (over the steps
    that computed it: a method may leave a part out of a batch), the lr and the speed go to metrics.jsonl;
    curves.png is redrawn from the log."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.count, self.clips, self.t0 = 0, 0, time.perf_counter()

    def on_resume(self, t) -> None:
        if t.dist.main:
            self._log(t).truncate(t.step)  # drop what a killed run logged after its last checkpoint

    def _log(self, t):
        from rvos.train.logs import MetricsLog

        return MetricsLog(t.out_dir / "metrics.jsonl")

    def after_step(self, t, parts: dict, batch) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1
        self.count += 1
        self.clips += batch.size[0] * t.dist.world_size
        if t.cfg.loop.log_every and t.step % t.cfg.loop.log_every == 0:
            self.flush(t)

    def flush(self, t) -> None:
        if not self.count:
            return
        if t.dist.main:
            values = {k: v / self.counts[k] for k, v in self.sums.items()}
            values["lr"] = t.optimizer.param_groups[0]["lr"]
            values["clips_per_s"] = self.clips / max(time.perf_counter() - self.t0, 1e-9)
            self._log(t).write(t.step, values)
        self.sums, self.counts, self.count, self.clips, self.t0 = {}, {}, 0, 0, time.perf_counter()

    def at_end(self, t) -> None:
        self.flush(t)
        if t.dist.main and t.cfg.loop.plot:
            from rvos.train.logs import plot_metrics

            plot_metrics(t.out_dir / "metrics.jsonl", t.out_dir / "curves.png")


class EvalHook:
    """Calls `trainer.eval_fn(model) -> {metric: value}` every `eval_every` steps and at the end (rank 0, model in
    eval mode, no gradients) and logs the values as `eval/<metric>`."""

    def after_step(self, t, parts: dict, batch) -> None:
        every = t.cfg.loop.eval_every
        if every and t.step % every == 0 and t.step < t.total_steps:
            self.run(t)

    def at_end(self, t) -> None:
        self.run(t)

    def run(self, t) -> None:
        if t.eval_fn is None or not t.dist.main:
            return
        was = t.model.training
        t.model.eval()
        with torch.no_grad():
            scores = t.eval_fn(t.model)
        t.model.train(was)
        from rvos.train.logs import MetricsLog

        MetricsLog(t.out_dir / "metrics.jsonl").write(t.step, {f"eval/{k}": v for k, v in scores.items()})


class CheckpointHook:
    """checkpoints/last.pt every `checkpoint_every` steps and at the end (written atomically by rank 0)."""

    def after_step(self, t, parts: dict, batch) -> None:
        every = t.cfg.loop.checkpoint_every
        if every and t.step % every == 0 and t.step < t.total_steps:
            t.save()

    def at_end(self, t) -> None:
        t.save()
