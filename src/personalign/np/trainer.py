"""Episodic meta-training of BTL / NP-BTL reward models (spec ``np-alignment.md`` §3, §8).

Usage::

    source = synthetic_source()                       # any EpisodeSource
    model = build_model(synthetic_model_config("np-btl"), seed=0)
    trainer = NPTrainer(model, synthetic_training_config(seed=0)).fit(source)
    state = trainer.model.condition(context_pairs)

The trainer draws fresh episodes every epoch from the stateless RNG (:mod:`personalign.np.episodes`),
validates on a fixed set of validation episodes every ``eval_every`` steps, keeps the best weights,
stops early after ``patience`` validations without improvement, and checkpoints (safetensors + JSON)
so that ``fit(resume=True)`` continues bit-identically on CPU.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch.utils.data import DataLoader

from personalign.np.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from personalign.np.config import NPTrainingConfig
from personalign.np.episodes import (
    EpisodeBatch,
    EpisodeSource,
    SamplingPlan,
    TrainingBatches,
    collate,
    validation_episodes,
    worker_init_fn,
)
from personalign.np.models import RewardModel, resolve_device

ProgressHook = Callable[[dict[str, Any]], None]
"""Called after every optimiser step with ``{"step", "total", "loss", "val_nll"?, ...}``."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_torch(config: NPTrainingConfig) -> torch.device:
    """Apply threads/determinism settings and return the resolved device."""
    import os

    device = resolve_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    if config.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Filling fresh tensors with NaN (the deterministic-mode default) costs ~3x on CPU and is only
        # a debugging aid: CPU kernels never read uninitialised memory.
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    return device


@torch.no_grad()
def episode_nll_and_accuracy(
    model: RewardModel, batches: list[EpisodeBatch], *, seed: int = 0
) -> tuple[float, float]:
    """Mean (over episodes) target NLL and accuracy in eval mode; latent sampling uses a private
    generator so the global RNG stream is untouched."""
    model.eval()
    nll_sum, acc_sum, n = 0.0, 0.0, 0
    gen = torch.Generator(device=model.device).manual_seed(seed)
    for b in batches:
        b = b.to(model.device)
        p = model.target_probabilities(b, generator=gen).clamp(1e-7, 1 - 1e-7)
        rows = b.target_mask.nonzero()[:, 0]
        counts = b.target_mask.sum(1).to(p.dtype)
        nll = torch.zeros(b.size, device=p.device).index_add(0, rows, -torch.log(p)) / counts
        acc = torch.zeros(b.size, device=p.device).index_add(
            0, rows, (p > 0.5).float() + 0.5 * (p == 0.5).float()
        )
        nll_sum += float(nll.sum())
        acc_sum += float((acc / counts).sum())
        n += b.size
    return nll_sum / n, acc_sum / n


class NPTrainer:
    """Meta-trains ``model`` on episodes from an :class:`EpisodeSource` (scikit-learn style: ``fit``
    returns ``self``; learned state in trailing-underscore attributes).

    Attributes set by :meth:`fit`:
        step_: optimiser steps taken in total (including before a resume).
        epoch_: epoch of the last step.
        best_val_nll_: best validation NLL (``inf`` without validation).
        best_step_: step of the best validation.
        history_: list of ``{"step", "loss", "val_nll", "val_acc"}`` records at each validation.
        train_seconds_: wall time of this ``fit`` call (plus that of the run it resumed).
        stopped_early_: whether patience ran out.
    """

    def __init__(self, model: RewardModel, config: NPTrainingConfig | None = None) -> None:
        self.model = model
        self.config = config or NPTrainingConfig()

    # ------------------------------------------------------------------------------------------
    def _lr_at(self, step: int) -> float:
        c = self.config
        planned = c.epochs * c.steps_per_epoch  # the schedule ignores max_steps so resumes match
        if c.warmup_steps and step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        if c.lr_schedule == "constant":
            return c.lr
        progress = min(1.0, (step - c.warmup_steps) / max(1, planned - c.warmup_steps))
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step_,
            "epoch": self.epoch_,
            "best_val_nll": self.best_val_nll_,
            "best_step": self.best_step_,
            "bad_evals": self._bad_evals,
            "history": self.history_,
            "train_seconds": self.train_seconds_,
            "stopped_early": self.stopped_early_,
            "config": self.config.to_dict(),
            "model_config": self.model.config.to_dict(),
        }

    def _validate(self, val_batches: list[EpisodeBatch], loss: float, count_patience: bool = True) -> bool:
        """Run a validation; update best (and the patience counter); return True when training should stop."""
        nll, acc = episode_nll_and_accuracy(self.model, val_batches, seed=self.config.seed)
        self.history_.append({"step": self.step_, "loss": loss, "val_nll": nll, "val_acc": acc})
        if nll < self.best_val_nll_ - 1e-7:
            self.best_val_nll_, self.best_step_, self._bad_evals = nll, self.step_, 0
            self._best_state = copy.deepcopy(self.model.state_dict())
            if self.config.checkpoint_dir:
                from safetensors.torch import save_file

                path = Path(self.config.checkpoint_dir) / "best.safetensors"
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                save_file({k: v.detach().cpu().contiguous() for k, v in self._best_state.items()}, str(tmp))
                tmp.replace(path)
        elif count_patience:
            self._bad_evals += 1
        return bool(self.config.patience and self._bad_evals >= self.config.patience)

    def fit(
        self, source: EpisodeSource, *, resume: bool = False, progress: ProgressHook | None = None
    ) -> Self:
        """Meta-train on ``source`` (``train`` split episodes; validation on its ``val`` split).

        With ``resume`` and a checkpoint in ``config.checkpoint_dir``, continue from it; the result is
        bit-identical to an uninterrupted run on CPU.
        """
        c = self.config
        device = configure_torch(c)
        model = self.model.to(device)
        if source.feature_dim != model.config.feature_dim:
            from personalign.np.errors import FeatureDimensionError

            raise FeatureDimensionError(
                f"episode source gives {source.feature_dim}-d features "
                f"but the model expects {model.config.feature_dim}"
            )
        types = tuple(c.type_indices) if c.type_indices is not None else tuple(range(len(source.type_names)))
        plan = SamplingPlan(
            c.batch_episodes,
            c.num_targets,
            c.max_context,
            c.context_per_batch,
            c.disjoint_train_context,
            types,
            c.type_balanced,
        )
        opt = torch.optim.AdamW(
            model.parameters(), lr=c.lr, betas=c.betas, eps=c.adam_eps, weight_decay=c.weight_decay
        )
        self.optimizer_ = opt
        self.step_, self.epoch_, self.best_val_nll_, self.best_step_ = 0, 0, math.inf, -1
        self.history_: list[dict[str, Any]] = []
        self.train_seconds_, self.stopped_early_, self._bad_evals = 0.0, False, 0
        self._best_state: dict[str, torch.Tensor] | None = None
        if resume and c.checkpoint_dir and has_checkpoint(c.checkpoint_dir, "last"):
            st = load_checkpoint(c.checkpoint_dir, "last", model=model, optimizer=opt)
            self.step_, self.epoch_ = st["step"], st["epoch"]
            self.best_val_nll_ = st["best_val_nll"] if st["best_val_nll"] is not None else math.inf
            self.best_step_, self._bad_evals, self.history_ = st["best_step"], st["bad_evals"], st["history"]
            self.train_seconds_, self.stopped_early_ = st["train_seconds"], st["stopped_early"]
            best = Path(c.checkpoint_dir) / "best.safetensors"
            if best.is_file():
                from safetensors.torch import load_file

                self._best_state = {k: v.to(device) for k, v in load_file(str(best)).items()}
        else:
            seed_everything(c.seed)
        val_batches: list[EpisodeBatch] = []
        if c.eval_every and c.val_episodes:
            eps = validation_episodes(
                source,
                seed=c.seed,
                n=c.val_episodes,
                max_context=c.max_context,
                num_targets=c.num_targets,
                type_indices=types,
            )
            val_batches = [collate(eps[i : i + 256]) for i in range(0, len(eps), 256)]

        t0 = time.perf_counter() - self.train_seconds_
        total, spe = c.total_steps, c.steps_per_epoch
        last_loss = float("nan")
        validated_at = self.history_[-1]["step"] if self.history_ else -1
        while self.step_ < total and not self.stopped_early_:
            epoch, start = divmod(self.step_, spe)
            ds = TrainingBatches(source, plan, seed=c.seed, epoch=epoch, num_batches=spe, start=start)
            loader = DataLoader(
                ds,
                batch_size=None,
                shuffle=False,
                num_workers=c.num_workers,
                worker_init_fn=worker_init_fn if c.num_workers else None,
                generator=torch.Generator().manual_seed(c.seed * 1_000_003 + epoch),
            )
            for batch in loader:
                if self.step_ >= total:
                    break
                for g in opt.param_groups:
                    g["lr"] = self._lr_at(self.step_)
                model.train()
                out = model.loss(batch.to(device))
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                if c.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
                opt.step()
                self.step_ += 1
                self.epoch_ = epoch
                last_loss = float(out["loss"].detach())
                info: dict[str, Any] = {"step": self.step_, "total": total, "loss": last_loss, "epoch": epoch}
                if val_batches and self.step_ % c.eval_every == 0:
                    self.stopped_early_ = self._validate(val_batches, last_loss)
                    validated_at = self.step_
                    info["val_nll"] = self.history_[-1]["val_nll"]
                    info["val_acc"] = self.history_[-1]["val_acc"]
                self.train_seconds_ = time.perf_counter() - t0
                if c.checkpoint_dir and (self.step_ % c.ckpt_every == 0 or self.stopped_early_):
                    save_checkpoint(c.checkpoint_dir, "last", model=model, optimizer=opt, state=self._state())
                if progress is not None:
                    progress(info)
                if self.stopped_early_:
                    break
        if val_batches and validated_at != self.step_ and self.step_ > 0:
            self._validate(
                val_batches, last_loss, count_patience=False
            )  # the final model competes for "best"
        self.train_seconds_ = time.perf_counter() - t0
        if c.checkpoint_dir:
            save_checkpoint(c.checkpoint_dir, "last", model=model, optimizer=opt, state=self._state())
        if c.keep_best and self._best_state is not None:
            model.load_state_dict(self._best_state)
        model.eval()
        return self
