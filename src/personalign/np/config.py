"""Configuration dataclasses for NP-BTL models and their episodic meta-training.

:class:`NPModelConfig` describes an architecture (spec ``np-alignment.md`` §2, §4);
:class:`NPTrainingConfig` sits beside :class:`~personalign.np.trainer.NPTrainer` (spec §3, §8).
Both round-trip through plain JSON dictionaries (:meth:`to_dict` / :meth:`from_dict`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

MODEL_KINDS = ("np-btl", "btl", "mixture-btl")


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
    kwargs = dict(data)
    for name, value in kwargs.items():
        if isinstance(value, list):
            kwargs[name] = tuple(value)
    return cls(**kwargs)


@dataclass(frozen=True)
class NPModelConfig:
    """Architecture of a BTL or NP-BTL reward model.

    Attributes:
        kind: ``"np-btl"`` (context-conditioned), ``"btl"`` (unconditional baseline, also used for
            the per-type oracles) or ``"mixture-btl"`` (context-conditioned through a discrete latent
            user type: ``num_components`` BT reward heads, the posterior over them by Bayes' rule).
        feature_dim: dimension ``d`` of one option's feature vector (synthetic: 1; text: 768).
        hidden: width ``h`` used everywhere (spec: 256).
        num_heads: heads of the context self-attention (spec: 8).
        attention_dropout: dropout inside the self-attention (spec: 0.1).
        feature_dropout: dropout on the input features of context pairs and targets, in training only
            (0 = off, the spec's model; text tasks use it against memorising the few thousand pairs).
        feature_dropout_keep_last: the last columns of a feature vector that dropout never touches
            (1 for the text tasks' ``length_feature``: a single column that dropout would hide).
        pooling: permutation-invariant pooling of the attended pairs, ``"sum"`` (spec) or ``"mean"``.
        pair_encoder_layers: 1 = ``Linear(2d->h)`` (text), 2 = ``Linear(2d->h)-ReLU-Linear(h->h)``
            (synthetic).
        latent: if true, the outer encoder emits a Gaussian ``q(z|S)`` (mean, softplus scale) and
            training adds ``beta_kl * KL(q(z|T) || q(z|C))``.
        min_sigma: floor added to the softplus scale of the latent variant.
        beta_kl: weight of the KL term of the latent variant.
        train_z_from: latent variant only: sample ``z`` in training from the ``"target"`` posterior
            (standard NP ELBO, ours) or the ``"context"`` posterior (reference code).
        eval_samples: latent variant only: ``z`` samples averaged at evaluation/inference time.
        num_components: ``mixture-btl`` only: number of reward heads ``K`` (latent user types); it
            need not equal the number of simulated types (K = 4 and 8 score alike on ``mix4``).
    """

    kind: Literal["np-btl", "btl", "mixture-btl"] = "np-btl"
    feature_dim: int = 1
    hidden: int = 256
    num_heads: int = 8
    attention_dropout: float = 0.1
    feature_dropout: float = 0.0
    feature_dropout_keep_last: int = 0
    pooling: Literal["sum", "mean"] = "sum"
    pair_encoder_layers: int = 2
    latent: bool = False
    min_sigma: float = 1e-4
    beta_kl: float = 1.0
    train_z_from: Literal["target", "context"] = "target"
    eval_samples: int = 32
    num_components: int = 4

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; available: {', '.join(MODEL_KINDS)}")
        if self.feature_dim < 1 or self.hidden < 1:
            raise ValueError("feature_dim and hidden must be positive")
        if self.hidden % self.num_heads:
            raise ValueError(f"hidden={self.hidden} must be divisible by num_heads={self.num_heads}")
        if self.pooling not in ("sum", "mean"):
            raise ValueError(f"pooling must be 'sum' or 'mean', got {self.pooling!r}")
        if self.pair_encoder_layers not in (1, 2):
            raise ValueError("pair_encoder_layers must be 1 or 2")
        if self.train_z_from not in ("target", "context"):
            raise ValueError("train_z_from must be 'target' or 'context'")
        if not 0.0 <= self.feature_dropout < 1.0 or not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError("feature_dropout and attention_dropout must be in [0, 1)")
        if not 0 <= self.feature_dropout_keep_last < self.feature_dim:
            raise ValueError("feature_dropout_keep_last must be in [0, feature_dim)")
        if self.num_components < 1:
            raise ValueError(f"num_components must be >= 1, got {self.num_components}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NPModelConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class NPTrainingConfig:
    """Episodic meta-training of a reward model (spec §3, §8).

    Attributes:
        lr: AdamW learning rate (spec [ref] 1e-4; the synthetic task uses a larger one, see
            :func:`personalign.np.synthetic.synthetic_training_config`).
        weight_decay: AdamW weight decay.
        adam_eps: AdamW epsilon (spec: 3e-5).
        betas: AdamW betas.
        grad_clip: max global gradient norm (``None`` or 0 disables clipping).
        lr_schedule: ``"constant"`` (spec [ref]) or ``"cosine"`` (decay to ``lr * min_lr_ratio`` over
            the planned steps, after ``warmup_steps`` of linear warm-up).
        warmup_steps: linear warm-up steps (0 = none).
        min_lr_ratio: final learning rate of the cosine schedule as a fraction of ``lr``.
        batch_episodes: episodes (simulated users) per optimiser step (spec: 64).
        num_targets: targets per training episode ``T`` (spec: 20).
        max_context: largest context size ``C_max``; ``m ~ U{0..C_max}`` (spec: 10).
        context_per_batch: draw one ``m`` per batch (reference code) instead of one per episode.
        disjoint_train_context: draw training contexts disjoint from the targets (default: the context
            is a subset of the targets, standard NP training).
        type_balanced: equal numbers of episodes per user type in every batch.
        type_indices: restrict episodes to these user types (per-type oracle: one type).
        epochs: passes; each pass draws ``episodes_per_epoch`` fresh episodes.
        episodes_per_epoch: episodes per epoch (spec [ref]: one per training pair).
        max_steps: stop after this many optimiser steps in total (``None``: ``epochs`` decide).
        eval_every: validate every this many steps (0 disables validation and early stopping).
        val_episodes: size of the fixed validation set (spread over ``m = 0..max_context``; targets
            disjoint from the context).
        patience: stop after this many validations without improvement (0 = never stop early).
        seed: seeds Python, NumPy and torch, and keys the stateless episode RNG.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda[:i]"``.
        num_threads: torch CPU threads (``None`` leaves torch's default).
        num_workers: DataLoader worker processes building batches (results do not depend on it).
        deterministic: call ``torch.use_deterministic_algorithms(True, warn_only=True)``.
        checkpoint_dir: folder for ``last``/``best`` checkpoints (``None``: keep best in memory only).
        ckpt_every: save a checkpoint every this many steps (and always at the end).
        keep_best: restore the best-validation weights at the end of :meth:`NPTrainer.fit`.
    """

    lr: float = 1e-4
    weight_decay: float = 0.01
    adam_eps: float = 3e-5
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    batch_episodes: int = 64
    num_targets: int = 20
    max_context: int = 10
    context_per_batch: bool = False
    disjoint_train_context: bool = False
    type_balanced: bool = False
    type_indices: tuple[int, ...] | None = None
    epochs: int = 3
    episodes_per_epoch: int = 16_000
    max_steps: int | None = None
    eval_every: int = 50
    val_episodes: int = 512
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None
    num_workers: int = 0
    deterministic: bool = True
    checkpoint_dir: str | None = None
    ckpt_every: int = 500
    keep_best: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        for name in ("batch_episodes", "num_targets", "epochs", "episodes_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_context < 0:
            raise ValueError("max_context must be >= 0")
        if not self.disjoint_train_context and self.max_context > self.num_targets:
            raise ValueError(
                f"max_context={self.max_context} > num_targets={self.num_targets}: a training context is a "
                "subset of the episode's targets; raise num_targets or set disjoint_train_context=True"
            )
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.episodes_per_epoch // self.batch_episodes)

    @property
    def total_steps(self) -> int:
        planned = self.epochs * self.steps_per_epoch
        return min(planned, self.max_steps) if self.max_steps is not None else planned

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        if self.type_indices is not None:
            d["type_indices"] = list(self.type_indices)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NPTrainingConfig:
        return _from_dict(cls, data)
