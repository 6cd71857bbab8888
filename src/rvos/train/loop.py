"""The training loop: one `train_step`, and hooks around it (progress, metrics log + plot, evaluation,
checkpoints). `Trainer` wires data, model, method, optimizer and schedule from a TrainConfig; `--resume` continues
exactly (weights, optimizer, schedule, AMP scaler, RNG states, data position)."""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from rvos.data.clips import ClipDataset, collate
from rvos.data.types import VideoRecord
from rvos.errors import ConfigError
from rvos.train import distributed as D
from rvos.train.checkpoint import (FORMAT, atomic_torch_save, check_encoders, checkpoint_path, compact_state,
                                   encoder_records, load_checkpoint, load_state_strict, omitted_prefixes, rng_state,
                                   set_rng_state)
from rvos.train.config import TrainConfig, save_config, to_dict
from rvos.train.provenance import training_data

EvalFn = Callable[[torch.nn.Module], dict]  # eval_fn(model) -> {metric: value}, run on rank 0


def train_step(method, batch, optimizer, scheduler, scaler, amp_dtype: Optional[torch.dtype], grad_clip: float) -> dict[str, float]:
    """One optimizer step on one batch; returns the loss parts as floats."""
    device_type = batch.device_type if hasattr(batch, "device_type") else batch.frames.device.type
    with torch.autocast(device_type, dtype=amp_dtype) if amp_dtype is not None else nullcontext():
        parts = method(batch)  # {"loss": total, part: value, ...}
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(parts["loss"]).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in parts.items()}


def seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def amp_dtype_for(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """Mixed precision on GPU only: bf16 where supported (auto), fp16 with a GradScaler otherwise."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode in ("bf16", "fp16"):
        return torch.bfloat16 if mode == "bf16" else torch.float16
    raise ConfigError(f"loop.amp must be auto, bf16, fp16 or off, got {mode!r}")


def load_records(cfg: TrainConfig, split: Optional[str]) -> list[VideoRecord]:
    """Records of one split of cfg.data under cfg.data.regime (training, or validation for an eval_fn)."""
    from rvos.data.readers import open_dataset
    from rvos.data.regimes import apply_regime

    if not cfg.data.root:
        raise ConfigError("data.root is not set (the dataset folder to train on)")
    records = open_dataset(cfg.data.root, layout=cfg.data.layout, split=split)
    if cfg.data.extra_synth and split == cfg.data.train_split:
        records = list(records) + extra_synth_records(*extra_synth_args(cfg.data))
    records = apply_regime(records, cfg.data.regime, seed=cfg.data.regime_seed)
    if cfg.data.augment and split == cfg.data.train_split:  # WSRVOS: training expressions' positives, negatives
        from rvos.augment.cache import apply_augmentation, read_augmentation

        _, entries = read_augmentation(cfg.data.augment)
        records, _ = apply_augmentation(records, entries, cfg.data.augment_threshold, source=cfg.data.augment)
    if cfg.data.repeat < 1:
        raise ConfigError(f"data.repeat must be >= 1, got {cfg.data.repeat}")
    if cfg.data.repeat > 1 and split == cfg.data.train_split:
        records = [r for r in records if not is_extra(r)] * cfg.data.repeat + [r for r in records if is_extra(r)]
    return records


def unique_records(records: Sequence[VideoRecord]) -> list[VideoRecord]:
    """Each video once, in first-seen order (records repeated by data.repeat, or by a benchmark)."""
    return list({r.video_id: r for r in records}.values())


EXTRA_TAG = "-extra"


def is_extra(rec: VideoRecord) -> bool:
    """A video of `data.extra_synth` (cached and tracked without its mirror image: more videos, not more views)."""
    return EXTRA_TAG in rec.video_id.split("/")[0] and "/" in rec.video_id


def extra_synth_args(d) -> tuple:
    """cfg.data's extra-video settings as (root, n, seed, folder, frames), the arguments of extra_synth_records and
    extra_synth_folder."""
    return d.root, d.extra_synth, d.extra_synth_seed, d.extra_synth_dir or None, d.extra_synth_frames


def extra_synth_folder(root: str | Path, n: int, seed: int, folder: str | Path | None = None, frames: int = 0) -> Path:
    """Where `data.extra_synth` puts its videos: <root>-extra<N>-seed<S>[-f<F>] next to `root`, or in `folder`."""
    root = Path(root)
    name = f"{root.name}{EXTRA_TAG}{n}-seed{seed}" + (f"-f{frames}" if frames else "")
    return root.parent / name if folder is None else Path(folder) / name


def negative_filter(cfg: TrainConfig):
    """`data.negative_rule` as the `may_refer` of rvos.data.negatives (None: R2-VOS's category rule). "attributes"
    reads the synthetic benchmark's stored queries, of data.root and of its extra videos (rvos.data.synth.truth)."""
    rule = cfg.data.negative_rule
    if rule == "category":  # DataConfig allows only this and "attributes"
        return None
    from rvos.data.synth.truth import SynthTruth

    truth = SynthTruth.load(cfg.data.root)
    if truth is None:
        raise ConfigError(f"data.negative_rule=attributes needs a synthetic benchmark with stored queries (rvos data "
                          f"synth); {cfg.data.root} is not one or predates them: use data.negative_rule=category")
    if cfg.data.extra_synth:
        folder = extra_synth_folder(*extra_synth_args(cfg.data))
        extra = SynthTruth.load(folder, prefix=f"{folder.name}/")
        if extra is None:
            raise ConfigError(f"data.negative_rule=attributes: the extra videos in {folder} have no stored queries; "
                              f"delete that folder so that it is generated again")
        truth = truth.merged(extra)
    return truth.may_refer


def extra_synth_records(root: str | Path, n: int, seed: int, folder: str | Path | None = None,
                        frames: int = 0) -> list[VideoRecord]:
    """The train split of `n` more synthetic videos (generated once, deterministic from `seed`, next to `root`,
    or in `folder`; `frames` per video, 0 = the generator's default), with video ids prefixed by the folder name so
    they never collide with the dataset's own."""
    from dataclasses import replace

    from rvos.data.readers import open_dataset
    from rvos.data.synth.config import SynthConfig
    from rvos.data.synth.writer import generate

    if frames and frames < 8:
        raise ConfigError(f"data.extra_synth_frames must be 0 or >= 8 (the generator's minimum), got {frames}")
    folder = extra_synth_folder(root, n, seed, folder, frames)
    if not (folder / "synth.json").is_file():
        sizes = dict(seed=seed, train=n, valid=0, test=0) | ({"frames": frames} if frames else {})
        generate(folder, SynthConfig(**sizes), overwrite=True)
    out = []
    for rec in open_dataset(folder, layout="ytvos", split="train"):
        video = replace(rec.video, video_id=f"{folder.name}/{rec.video.video_id}")
        out.append(replace(rec, video=video))
    return out


class Trainer:
    """Holds the training state; `fit()` runs the step loop and calls hooks after each step and at the end.
    `records`, `model` and `method_factory` may be passed in (tests, notebooks); by default they come from cfg.
    `features`: a prebuilt feature cache covering `records` (e.g. one cache shared by cross-validation folds).
    `dataset` + `collate_fn`: items of another kind than clips (the objects method's referrer trains on tracks);
    its batches need `.to(device)`, `.size` and `.device_type`, and `records` is then not read."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, eval_fn: Optional[EvalFn] = None,
                 records: Optional[Sequence[VideoRecord]] = None, model: Optional[torch.nn.Module] = None,
                 method_factory: Optional[Callable] = None, hooks: Optional[list] = None, features=None,
                 dataset: Optional[torch.utils.data.Dataset] = None, collate_fn: Optional[Callable] = None):
        self.cfg, self.out_dir, self.eval_fn = cfg, Path(out_dir), eval_fn
        self.device = D.resolve_device(cfg.loop.device)
        self.dist = D.setup(self.device)
        seed_all(cfg.loop.seed)
        if records is None and dataset is None:
            records = load_records(cfg, cfg.data.train_split)
        self.trained_on = training_data(cfg, records or [])  # stored in every checkpoint (train/provenance.py)
        if cfg.data.negative_ratio != 0 and dataset is None:  # R2-VOS training pairs: negatives drawn once per run, seeded
            from rvos.data.negatives import sample_negatives, with_negatives

            records = with_negatives(records, sample_negatives(unique_records(records), cfg.data.negative_ratio,
                                                               cfg.data.negative_seed, may_refer=negative_filter(cfg)))
        if model is None:
            from rvos.models import build_model

            model = build_model(cfg.model)
        self.model = model.to(self.device)
        if method_factory is None:
            from rvos.train.method import build_method

            method_factory = lambda m: build_method(cfg.method.name, m, cfg.method.params)  # noqa: E731
        self.method = method_factory(self.model)
        if isinstance(self.method, torch.nn.Module):
            self.method.to(self.device)
        if dataset is None and features is None and cfg.loop.feature_cache != "off":  # a prebuilt cache (FeatureCache)
            features = self._feature_cache(records)
        self.dataset = dataset if dataset is not None else ClipDataset(records, cfg.data.clip, features=features)
        self.sampler = D.ShardSampler(len(self.dataset), self.dist, cfg.loop.batch_size, seed=cfg.loop.seed)
        self.loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=cfg.loop.batch_size, sampler=self.sampler, collate_fn=collate_fn or collate,
            num_workers=cfg.loop.workers, generator=torch.Generator().manual_seed(cfg.loop.seed),  # keeps the global RNG untouched
            pin_memory=self.device.type == "cuda", drop_last=False)
        self.total_steps = cfg.loop.steps or cfg.loop.epochs * self.sampler.batches_per_epoch
        self.train_module = self._wrap_ddp()
        self.optimizer = self._optimizer()
        o = cfg.optim
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=list(o.decay_steps), gamma=o.gamma)
        self.amp_dtype = amp_dtype_for(cfg.loop.amp, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.step, self.epoch, self.pos = 0, 0, 0  # pos: batches of `epoch` already consumed
        self.hooks = hooks if hooks is not None else default_hooks(self)
        if resume:
            self.resume(checkpoint_path(self.out_dir))
        if self.dist.main:
            save_config(cfg, self.out_dir / "config.yaml")

    # ---- setup helpers -------------------------------------------------------------------------------------------
    def _feature_cache(self, records):
        from rvos.train.feature_cache import build_feature_cache

        vision = getattr(self.model, "vision", None)
        if vision is not None and any(p.requires_grad for p in vision.parameters()):
            raise ConfigError("loop.feature_cache needs a frozen visual backbone (model.vision_frozen=true)")
        if self.cfg.data.clip.size is None:
            raise ConfigError("loop.feature_cache needs a fixed training size (data.clip.size)")
        folder = None
        if self.cfg.loop.feature_cache == "disk":
            folder = Path(self.cfg.loop.feature_cache_dir) if self.cfg.loop.feature_cache_dir else self.out_dir / "features"
        elif self.cfg.loop.feature_cache != "memory":
            raise ConfigError(f"loop.feature_cache must be off, memory or disk, got {self.cfg.loop.feature_cache!r}")
        if folder is not None and not self.dist.main:
            D.barrier(self.dist)  # rank 0 builds the memmaps first; the others then reuse them
        mirrored = {r.video_id for r in records if not is_extra(r)}  # extra synthetic videos: one view only
        cache = build_feature_cache(self.model, records, tuple(self.cfg.data.clip.size), self.device, folder,
                                    progress=self.cfg.loop.progress and self.dist.main, mirrored=mirrored)
        if folder is not None and self.dist.main:
            D.barrier(self.dist)
        return cache

    def _wrap_ddp(self):
        if not self.dist.enabled or not isinstance(self.method, torch.nn.Module):
            return self.method
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(self.method, device_ids=ids, find_unused_parameters=True)

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        if hasattr(self.method, "parameter_groups"):
            text_lr = {} if o.text_lr is None else {"text_lr": o.text_lr}  # methods without a text group take 2 args
            groups = self.method.parameter_groups(o.lr, o.backbone_lr, **text_lr)
        else:
            groups = [{"params": [p for p in self.method.parameters() if p.requires_grad], "lr": o.lr}]
        groups = [g for g in groups if any(p.requires_grad for p in g["params"])]
        if not groups:
            raise ConfigError("nothing to train: every parameter is frozen")
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)

    # ---- state -------------------------------------------------------------------------------------------------
    def _method_extra(self) -> dict:
        """The method's own state (parameters/buffers outside the model, e.g. a loss's learnable temperature)."""
        if not isinstance(self.method, torch.nn.Module) or self.method is self.model:
            return {}
        own = {id(t) for t in self.model.state_dict(keep_vars=True).values()}
        return {k: v.detach() for k, v in self.method.state_dict(keep_vars=True).items() if id(v) not in own}

    def state_dict(self) -> dict:
        omitted = omitted_prefixes(getattr(self.model, "config", None))
        return {"format": FORMAT, "config": to_dict(self.cfg), "model": compact_state(self.model, omitted), "omitted": omitted,
                "encoders": encoder_records(self.model, omitted), "trained_on": self.trained_on,
                "method": self._method_extra(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(), "step": self.step,
                "epoch": self.epoch, "rng": rng_state(), "data_state": {"epoch": self.epoch, "pos": self.pos}}

    def save(self, path: Optional[Path] = None) -> Path:
        path = path or checkpoint_path(self.out_dir)
        if self.dist.main:
            atomic_torch_save(self.state_dict(), path)
        return path

    def resume(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        check_encoders(self.model, ckpt, path)
        load_state_strict(self.model, ckpt["model"], path, omitted=ckpt.get("omitted", ()))
        extra = self._method_extra()
        if set(extra) != set(ckpt["method"]):
            raise ConfigError(f"checkpoint {path}: method state keys {sorted(ckpt['method'])[:5]} do not match "
                              f"this method's {sorted(extra)[:5]}")
        if extra:
            self.method.load_state_dict(ckpt["method"], strict=False)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as e:
            raise ConfigError(f"checkpoint {path}: optimizer state does not match this config ({e})") from None
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.epoch, self.pos = int(ckpt["step"]), int(ckpt["data_state"]["epoch"]), int(ckpt["data_state"]["pos"])
        rng = ckpt["rng"]
        rng["torch"] = rng["torch"].cpu()
        if "cuda" in rng:
            rng["cuda"] = [s.cpu() for s in rng["cuda"]]
        set_rng_state(rng)
        for h in self.hooks:
            if hasattr(h, "on_resume"):
                h.on_resume(self)

    # ---- loop --------------------------------------------------------------------------------------------------
    def batches(self):
        """Batches from the current data position on, across epochs, until total_steps."""
        while self.step < self.total_steps:
            self.sampler.set_epoch(self.epoch, start=self.pos * self.cfg.loop.batch_size)
            self.dataset.set_epoch(self.epoch)
            if hasattr(self.method, "set_epoch"):  # e.g. WRVOS switches pseudo masks on after the first epoch
                self.method.set_epoch(self.epoch)
            for batch in self.loader:
                self.pos += 1
                yield batch.to(self.device, non_blocking=True)
                if self.step >= self.total_steps:
                    return
            self.epoch, self.pos = self.epoch + 1, 0

    def fit(self) -> dict:
        self.method.train() if hasattr(self.method, "train") else self.model.train()
        last: dict = {}
        try:
            for batch in self.batches():
                last = train_step(self.train_module, batch, self.optimizer, self.scheduler, self.scaler, self.amp_dtype,
                                  self.cfg.optim.grad_clip)
                self.step += 1
                for h in self.hooks:
                    h.after_step(self, last, batch)
            if self.dist.enabled:  # DDP syncs buffers (BatchNorm statistics) at each forward: end equal too
                for b in self.model.buffers():
                    torch.distributed.broadcast(b.data, 0)
            for h in self.hooks:
                h.at_end(self)
        finally:
            for h in self.hooks:
                if hasattr(h, "close"):
                    h.close()
        return last


def default_hooks(t: Trainer) -> list:
    from rvos.train.hooks import CheckpointHook, EvalHook, LogHook, ProgressHook

    return [ProgressHook(), EvalHook(), LogHook(), CheckpointHook()]  # eval before log: the plot shows it


def train(cfg: TrainConfig, out_dir: str | Path, **kwargs) -> dict:
    """Train from `cfg` into `out_dir` (config.yaml, metrics.jsonl, curves.png, checkpoints/last.pt).
    method.name=objects runs its two phases (rvos.methods.objects.train_objects)."""
    if cfg.method.name == "objects":
        from rvos.methods.objects import train_objects

        unknown = sorted(set(kwargs) - {"resume", "eval_fn", "records"})
        if unknown:
            raise ConfigError(f"method.name=objects trains in two phases and takes no {unknown}")
        return train_objects(cfg, out_dir, **kwargs)
    trainer = Trainer(cfg, out_dir, **kwargs)
    try:
        return trainer.fit()
    finally:
        D.cleanup(trainer.dist)
