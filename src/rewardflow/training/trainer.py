"""The training loop: the only code that talks to accelerate (through .distributed).

Usage::

    from rewardflow.training import Trainer, TrainConfig
    Trainer(TrainConfig.load("configs/shapes-miro.yaml", ["max_steps=2000"])).train()

To resume, construct the same Trainer again: `train()` picks up the newest complete checkpoint
in `out_dir` and continues bit for bit (same weights, EMA, optimizer, data position, noise).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from rewardflow.flow import flow_matching_loss
from rewardflow.utils.locks import FolderLock, FolderLockedError

from . import checkpoint as ckpt
from .callbacks import Callback
from .config import TrainConfig, check_resume_config
from .distributed import (
    DataContext,
    broadcast_object,
    gather_objects,
    make_accelerator,
    per_device_batch,
    step_generator,
)
from .ema import EMA
from .logging import RunLogger
from .optim import build_optimizer, build_scheduler, param_groups

__all__ = ["Trainer"]

DataArg = Iterable | Callable[[DataContext], Iterable] | None


class Trainer:
    """Flow-matching trainer for baseline / single-reward / MIRO denoisers.

    data: None (build the shard dataset from config.data), a batch iterable for this rank, or a
        factory `f(DataContext) -> iterable`. Batches follow docs/ARCHITECTURE.md; an iterable
        with state_dict()/load_state_dict() makes its position part of each checkpoint.
    model: None (build config.model's preset) or a module obeying the denoiser contract.
    callbacks: periodic jobs (sample grids, reward evaluation); None -> from config.sample/eval.
    allow_changes: config keys that may differ from the resumed checkpoint's config.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        data: DataArg = None,
        model: nn.Module | None = None,
        callbacks: Sequence[Callback] | None = None,
        allow_changes: Sequence[str] = (),
        accelerator=None,
    ):
        from . import builders

        self.config = config
        self.allow_changes = tuple(allow_changes)
        self.accelerator = accelerator or make_accelerator(config)
        acc = self.accelerator
        self.device, self.rank, self.world_size = acc.device, acc.process_index, acc.num_processes
        self.per_device_batch = per_device_batch(config, self.world_size)

        reward_keys = builders.resolve_reward_keys(config, model)
        ctx = DataContext(config, self.rank, self.world_size, self.per_device_batch, self.device, reward_keys)
        self.data = (
            builders.build_data(config, ctx)
            if data is None
            else (data(ctx) if callable(data) and not hasattr(data, "__iter__") else data)
        )
        reward_keys = builders.resolve_reward_keys(config, model, self.data)
        self.reward_keys = reward_keys
        self.bins = builders.run_bins(config, reward_keys)

        torch.manual_seed(config.seed)  # same initial weights on every rank and every fresh start
        if model is None:
            model = builders.build_model(config, reward_keys, self.data)
        self.raw_model = model.to(self.device)
        n = getattr(getattr(model, "config", None), "num_rewards", len(reward_keys))
        if n != len(reward_keys):
            raise ValueError(f"model has num_rewards={n} but the run uses reward keys {reward_keys}")
        self.ema = EMA(self.raw_model, config.ema.decay, config.ema.warmup)
        self._optimizer = build_optimizer(param_groups(self.raw_model, config.optim.weight_decay), config.optim)
        self.scheduler = build_scheduler(self._optimizer, config.optim, config.max_steps)
        self.model, self.optimizer = acc.prepare(self.raw_model, self._optimizer)
        if config.compile:
            # Compiled wrapper for the forward only; self.raw_model stays the plain module whose
            # state_dict (no `_orig_mod.` prefixes) every checkpoint saves.
            self.model = torch.compile(self.model)
        self.callbacks = list(builders.default_callbacks(config, reward_keys) if callbacks is None else callbacks)

        self.step = 0
        self.images_seen = 0
        self.skipped_steps = 0
        self.resumed_from: str | None = None
        self.logger: RunLogger | None = None

    # --- checkpoints ----------------------------------------------------------------------------
    def _trainer_state(self) -> dict[str, Any]:
        data_state = self.data.state_dict() if hasattr(self.data, "state_dict") else None
        per_rank = gather_objects(self.accelerator, {"rng": ckpt.rng_state(), "data": data_state})
        scaler = getattr(self.accelerator, "scaler", None)
        return {
            "step": self.step,
            "images_seen": self.images_seen,
            "skipped_steps": self.skipped_steps,
            "world_size": self.world_size,
            "reward_keys": list(self.reward_keys),
            "scheduler": self.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "ema": self.ema.state(),
            "rng": [r["rng"] for r in per_rank],
            "data": [r["data"] for r in per_rank],
        }

    def save_checkpoint(self) -> None:
        """Collective: every rank contributes its RNG/data state; rank 0 alone writes."""
        state = self._trainer_state()
        if self.accelerator.is_main_process:
            path = ckpt.save_checkpoint(
                self.config.out_dir,
                self.step,
                ema_model=self.ema.module,
                live_model=self.raw_model,
                optimizer_state=self._optimizer.state_dict(),
                trainer_state=state,
                config=self.config.to_dict(),
                keep_last=self.config.checkpoint.keep_last,
                bins=self.bins,
                extra_json=ckpt.pipeline_files(self.config, self.raw_model.config),
            )
            self._log_event(f"saved checkpoint {path}")
        # No rank runs ahead (or exits) while the checkpoint is half written.
        self.accelerator.wait_for_everyone()

    def resume(self, path: str | None = None) -> bool:
        """Load `path`, or the newest checkpoint in out_dir; False when there is none."""
        if path is None:
            if self.accelerator.is_main_process:
                ckpt.clean_temp(self.config.out_dir)
            latest = ckpt.newest_valid_checkpoint(self.config.out_dir) if self.accelerator.is_main_process else None
            # Ranks must agree on one checkpoint even if a listing races with a write.
            latest = broadcast_object(self.accelerator, str(latest) if latest else None)
            if latest is None:
                return False
            path = latest
        loaded = ckpt.load_checkpoint(path, ema_model=self.ema.module, live_model=self.raw_model)
        ts = loaded["trainer_state"]
        saved_cfg = dict(loaded["config"])
        check_resume_config(saved_cfg, self.config.to_dict(), self.allow_changes)
        if (
            ts["world_size"] != self.world_size
            and "world_size" not in self.allow_changes
            and "*" not in self.allow_changes
        ):
            raise ValueError(
                f"checkpoint {path} was written by {ts['world_size']} processes, this run has {self.world_size}; "
                "the data order would change. Pass --allow-change world_size to continue anyway."
            )
        if list(ts.get("reward_keys", self.reward_keys)) != list(self.reward_keys):
            raise ValueError(f"checkpoint reward keys {ts['reward_keys']} != this run's {self.reward_keys}")
        self._optimizer.load_state_dict(loaded["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        self.ema.load_state(ts["ema"])
        self.step, self.images_seen, self.skipped_steps = ts["step"], ts["images_seen"], ts["skipped_steps"]
        r = min(self.rank, len(ts["rng"]) - 1)
        ckpt.set_rng_state(ts["rng"][r])
        if hasattr(self.data, "load_state_dict") and ts["data"][r] is not None:
            self.data.load_state_dict(ts["data"][r])
        self.resumed_from = str(path)
        return True

    # --- one optimisation step ------------------------------------------------------------------
    def compute_loss(self, batch: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
        """Mean flow-matching loss of this rank's micro-batch; randomness only from `gen`."""
        dev = self.device
        x = batch["pixels"] if "pixels" in batch else batch["latents"]
        x = x.to(dev, torch.float32, non_blocking=True)
        b = x.shape[0]
        # Global row j * world + rank is this rank's row j: the interleaving ShardDataset uses.
        g, rows = b * self.world_size, slice(self.rank, None, self.world_size)
        t = self.config.time.sample(g, generator=gen, device=dev)[rows]
        eps = torch.randn((g, *x.shape[1:]), generator=gen, device=dev)[rows]
        text_drop = (torch.rand(g, generator=gen, device=dev) < self.config.text_dropout)[rows]
        text, mask = batch["text"].to(dev, torch.float32), batch["text_mask"].to(dev, torch.bool)
        if hasattr(self.raw_model, "drop_text"):
            text, mask = self.raw_model.drop_text(text, mask, text_drop)
        cond: dict[str, Any] = {"text": text, "text_mask": mask}
        n = len(self.reward_keys)
        if n:
            rewards = batch.get("rewards")
            if rewards is None or rewards.shape[-1] != n:
                got = None if rewards is None else tuple(rewards.shape)
                raise ValueError(f"batch rewards {got} do not match the run's reward keys {self.reward_keys}")
            rewards = rewards.to(dev, torch.float32)
            reward_drop = (torch.rand((g, n), generator=gen, device=dev) < self.config.reward_dropout)[rows]
            rewards, reward_drop = self._text_dropped_rewards(rewards, reward_drop, text_drop)
            cond["rewards"] = rewards
            if getattr(getattr(self.raw_model, "config", None), "reward_null", False):
                cond["reward_drop"] = reward_drop
        if getattr(self.raw_model, "carries_latents", False):
            # Latent self-conditioning (RIN): these rows see the latents of a no-grad first pass.
            rate = self.raw_model.config.rin_self_cond
            cond["self_cond"] = (torch.rand(g, generator=gen, device=dev) < rate)[rows]
        return flow_matching_loss(self.model, x, t, eps, **cond).mean()

    def _text_dropped_rewards(self, rewards, reward_drop, text_drop):
        """Rows whose caption was dropped: true rewards ("keep"), all 0 ("zero": v(null, s = 0) is
        then the unconditional model the CFG negative branch asks for) or the null tokens ("null_token")."""
        mode = self.config.text_dropout_rewards
        if mode == "zero":
            rewards = torch.where(text_drop[:, None], torch.zeros_like(rewards), rewards)
        elif mode == "null_token":
            if not getattr(getattr(self.raw_model, "config", None), "reward_null", False):
                raise ValueError(
                    "text_dropout_rewards=null_token needs null reward tokens: set "
                    "model.overrides.reward_null=true or use 'keep' / 'zero'"
                )
            reward_drop = reward_drop | text_drop[:, None]
        return rewards, reward_drop

    def _next_batch(self) -> dict[str, Any]:
        try:
            return next(self._iter)
        except StopIteration:
            self._iter = iter(self.data)  # a finite source: start its next epoch
            try:
                return next(self._iter)
            except StopIteration:
                raise ValueError("the training data yields no batches") from None

    def train_step(self) -> dict[str, float]:
        acc, cfg = self.accelerator, self.config
        accum = cfg.optim.grad_accumulation
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(accum):
            batch = self._next_batch()
            gen = step_generator(cfg.seed, self.step, micro, self.device)
            sync = nullcontext() if micro == accum - 1 else acc.no_sync(self.model)
            with sync:
                with acc.autocast():
                    loss = self.compute_loss(batch, gen)
                acc.backward(loss / accum)
            loss_sum += loss.detach().float()
        max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        grad_norm = acc.clip_grad_norm_(self.model.parameters(), max_norm)
        grad_norm = torch.as_tensor(grad_norm, device=self.device, dtype=torch.float32)
        # Identical numbers on every rank, so every rank makes the same skip decision.
        stats = acc.reduce(torch.stack([loss_sum / accum, grad_norm]), reduction="mean")
        loss_v, gnorm_v = (float(v) for v in stats.tolist())
        finite = math.isfinite(loss_v) and math.isfinite(gnorm_v)
        lr = self.scheduler.get_last_lr()[0]
        if finite:
            self.optimizer.step()
            self.ema.update(self.raw_model)
        else:
            self.skipped_steps += 1
            if getattr(acc, "scaler", None) is not None and not math.isfinite(gnorm_v):
                self.optimizer.step()  # fp16: lets GradScaler see the overflow and lower its scale
            self._log_event(
                f"step {self.step}: non-finite loss/grad (loss={loss_v}, grad_norm={gnorm_v}); "
                f"skipped ({self.skipped_steps} so far)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()  # lr stays a function of the step count, skipped or not
        self.step += 1
        self.images_seen += cfg.data.batch_size
        return {"loss": loss_v, "grad_norm": gnorm_v, "lr": lr, "finite": finite}

    # --- the loop -------------------------------------------------------------------------------
    def _log_event(self, text: str) -> None:
        if self.logger is not None:
            self.logger.message(text)
            self.logger.log(self.step, {"message": text}, kind="event")

    def _run_callbacks(self, force: bool = False) -> None:
        for cb in self.callbacks:
            if not (cb.every and (force or self.step % cb.every == 0)):
                continue
            if self.accelerator.is_main_process or not cb.main_process_only:
                metrics = cb(self, self.step)
                if metrics and self.logger is not None:
                    self.logger.log(self.step, metrics, kind=cb.kind)
            if cb.main_process_only:
                self.accelerator.wait_for_everyone()

    def _take_lock(self) -> FolderLock | None:
        """Rank 0 locks out_dir; every rank learns the outcome, so none waits on a rank that stopped."""
        lock, error = None, None
        if self.accelerator.is_main_process:
            try:
                lock = FolderLock(self.config.out_dir, "train").acquire()
            except FolderLockedError as exc:
                error = str(exc)
        error = broadcast_object(self.accelerator, error)
        if error:
            raise FolderLockedError(error)
        return lock

    def train(self) -> dict[str, Any]:
        """Train to max_steps (resuming from out_dir's newest checkpoint); out_dir is locked meanwhile."""
        lock = self._take_lock()
        try:
            return self._train()
        finally:
            if lock is not None:
                lock.release()

    def _open_log(self) -> None:
        cfg, acc = self.config, self.accelerator
        self.logger = RunLogger(
            cfg.out_dir,
            enabled=acc.is_main_process,
            tensorboard=cfg.tensorboard,
            progress=cfg.progress,
            total_steps=cfg.max_steps,
            initial_step=self.step,
        )
        if self.resumed_from:
            self._log_event(f"resumed from {self.resumed_from} at step {self.step}")
        else:
            self._log_event(
                f"starting: {self.world_size} process(es), {self.per_device_batch} images/device "
                f"x {cfg.optim.grad_accumulation} accumulation, device {self.device}"
            )

    def _account(self, window: dict, out: dict, busy: float) -> dict:
        """Add one step to the logging window (throughput counts training time only, not
        checkpoints or evaluation); log and start a new window every `log_every` steps."""
        cfg = self.config
        window["busy"] += busy
        window["steps"] += 1
        if out["finite"]:
            window["loss"] += out["loss"]
            window["n"] += 1
        elapsed = window["busy"]
        ips = window["steps"] * cfg.data.batch_size / max(elapsed, 1e-9)
        if self.logger is not None:
            self.logger.progress(1, loss=out["loss"], img_s=ips)
        if not (cfg.log_every and self.step % cfg.log_every == 0):
            return window
        if self.logger is not None:
            mean_loss = window["loss"] / window["n"] if window["n"] else float("nan")
            record = {
                "loss": mean_loss,
                "lr": out["lr"],
                "grad_norm": out["grad_norm"],
                "images_per_s": ips,
                "images_seen": self.images_seen,
                "skipped_steps": self.skipped_steps,
                "step_time_s": elapsed / max(window["steps"], 1),
            }
            self.logger.log(self.step, record)
        return _new_window()

    def _train(self) -> dict[str, Any]:
        cfg, acc = self.config, self.accelerator
        if self.resumed_from is None and self.step == 0:
            self.resume()
        self._open_log()
        self._iter = iter(self.data)
        if self.step == 0 and cfg.eval.at_start:
            self._run_callbacks(force=True)
        window = _new_window()
        last_saved = self.step if self.resumed_from else -1
        try:
            while self.step < cfg.max_steps:
                t0 = time.perf_counter()
                out = self.train_step()
                window = self._account(window, out, time.perf_counter() - t0)
                if cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0:
                    self.save_checkpoint()
                    last_saved = self.step
                self._run_callbacks()
            if last_saved != self.step:
                self.save_checkpoint()
        finally:
            if self.logger is not None:
                self.logger.close()
        acc.wait_for_everyone()
        return {
            "step": self.step,
            "images_seen": self.images_seen,
            "skipped_steps": self.skipped_steps,
            "out_dir": cfg.out_dir,
            "resumed_from": self.resumed_from,
        }


def _new_window() -> dict[str, float]:
    return {"loss": 0.0, "n": 0, "busy": 0.0, "steps": 0}
