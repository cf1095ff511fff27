"""BTL and NP-BTL reward models (spec ``np-alignment.md`` §2, §4).

Shapes used throughout (``B`` episodes, ``M`` padded context size, ``T`` padded target count,
``d`` feature dimension of one option, ``h`` hidden width):

* context pairs ``(B, M, 2, d)`` with ``[:, :, 0]`` the chosen and ``[:, :, 1]`` the rejected option,
  plus a boolean validity mask ``(B, M)``;
* target pairs ``(B, T, 2, d)`` (also chosen-first) with a mask ``(B, T)``.

:class:`NPBTLRewardModel`: pair encoder ``phi([chosen; rejected])`` -> multi-head self-attention
(no positional encoding, key-padding mask) -> sum (or mean) pooling over the valid pairs -> outer MLP
-> ``z``. An empty context pools to the zero vector (attention never runs on an empty set). Reward
head ``Linear(2h->h)-BatchNorm1d-ReLU-Linear(h->1)`` on ``[t(features); z]``.

:class:`BTLRewardModel`: the same target encoder and a ``Linear(h->h)-BN-ReLU-Linear(h->1)`` head; it
ignores contexts. A per-type *oracle* is a BTL model trained on one type's episodes only
(``NPTrainingConfig.type_indices``).

:class:`MixtureBTLRewardModel` (ours): ``K`` BT heads and a discrete latent user type whose posterior
given the context comes from the heads' own likelihoods by Bayes' rule.

All models expose ``condition(context_pairs) -> UserState`` for inference (see
:mod:`personalign.np.state`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from personalign.np.config import NPModelConfig
from personalign.np.errors import CheckpointError

if TYPE_CHECKING:
    from personalign.np.episodes import EpisodeBatch
    from personalign.np.state import Featurizer, UserState

MODEL_FILE = "model.safetensors"
MODEL_META = "model.json"


@dataclass(frozen=True)
class Gaussian:
    """A diagonal Gaussian ``N(mean, diag(scale**2))`` over ``z``; tensors of shape ``(B, h)``."""

    mean: torch.Tensor
    scale: torch.Tensor


def kl_normal(q: Gaussian, p: Gaussian) -> torch.Tensor:
    """``KL(q || p)`` of diagonal Gaussians, summed over the last dimension -> shape ``(B,)``.

    ``KL = sum_i log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2``.
    """
    var_q, var_p = q.scale.pow(2), p.scale.pow(2)
    kl = torch.log(p.scale / q.scale) + (var_q + (q.mean - p.mean).pow(2)) / (2 * var_p) - 0.5
    return kl.sum(-1)


def _mlp2(d_in: int, h: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, h), nn.ReLU(), nn.Linear(h, d_out))


class ContextEncoder(nn.Module):
    """``phi`` -> self-attention -> masked pooling -> outer MLP. Output ``(B, out_dim)``."""

    def __init__(self, cfg: NPModelConfig, out_dim: int) -> None:
        super().__init__()
        d, h = cfg.feature_dim, cfg.hidden
        self.pooling = cfg.pooling
        self.hidden = h
        self.phi = nn.Linear(2 * d, h) if cfg.pair_encoder_layers == 1 else _mlp2(2 * d, h, h)
        self.attention = nn.MultiheadAttention(
            h, cfg.num_heads, dropout=cfg.attention_dropout, batch_first=True
        )
        self.outer = _mlp2(h, h, out_dim)

    def pool(self, pairs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled representation ``(B, h)``; zero for episodes without context pairs."""
        b, m = mask.shape
        pooled = pairs.new_zeros(b, self.hidden)
        counts = mask.sum(1)
        nonempty = counts > 0
        if m == 0 or not bool(nonempty.any()):
            return pooled
        idx = nonempty.nonzero().squeeze(1)
        sub_mask = mask[idx]
        # no padding at all: plain attention
        sub_mask_arg = None if sub_mask.shape[0] == b and bool(sub_mask.all()) else ~sub_mask
        x = pairs[idx].flatten(2)  # (b', M, 2d)
        e = self.phi(x)
        a, _ = self.attention(e, e, e, key_padding_mask=sub_mask_arg, need_weights=False)
        a = a * sub_mask.unsqueeze(-1).to(a.dtype)
        s = a.sum(1)
        if self.pooling == "mean":
            s = s / counts[idx].unsqueeze(-1).to(s.dtype)
        return pooled.index_copy(0, idx, s)

    def forward(self, pairs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.outer(self.pool(pairs, mask))


class RewardModelBase(nn.Module):
    """Shared plumbing: config, device, target encoding, persistence and the inference API."""

    config: NPModelConfig

    def __init__(self, config: NPModelConfig) -> None:
        super().__init__()
        self.config = config
        self.target_encoder = _mlp2(config.feature_dim, config.hidden, config.hidden)
        self.feature_dropout = nn.Dropout(config.feature_dropout)

    # -- per-model hooks -------------------------------------------------------------------------
    @property
    def is_conditional(self) -> bool:
        return False

    @property
    def z_dim(self) -> int:
        return 0

    def encode(self, pairs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | Gaussian | None:
        """Context representation of each episode (``None`` for unconditional models)."""
        return None

    def head(self, t: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def drop_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature dropout (training only), sparing the last ``feature_dropout_keep_last`` columns."""
        keep = self.config.feature_dropout_keep_last
        if keep == 0:
            return self.feature_dropout(x)
        return torch.cat([self.feature_dropout(x[..., :-keep]), x[..., -keep:]], dim=-1)

    # -- scoring ---------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def rewards(self, features: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Rewards ``(n,)`` of ``n`` options ``(n, d)``, each with its own ``z`` row ``(n, h)`` (or
        ``None``)."""
        return self.head(self.target_encoder(features), z).squeeze(-1)

    def head_from_projection(self, t: torch.Tensor, z_proj: torch.Tensor | None) -> torch.Tensor:
        """Reward head given ``t`` ``(n, h)`` and the precomputed ``z`` half of its first layer ``(n, h)``
        (see :meth:`project_z`); equals ``head(t, z)``."""
        return self.head(t, None).squeeze(-1)

    def project_z(self, z: torch.Tensor | None) -> torch.Tensor | None:
        """Per-episode ``z`` contribution to the head's first layer (``None`` for unconditional models)."""
        return None

    def pair_margins(
        self, targets: torch.Tensor, target_mask: torch.Tensor, z: torch.Tensor | None
    ) -> torch.Tensor:
        """``r(chosen) - r(rejected)`` for the valid targets, flattened in mask order -> ``(n,)``.

        ``z`` is per episode ``(B, h)``; its projection through the head's first layer is computed once
        per episode, not once per target. Padded targets never reach the network (they would pollute
        BatchNorm statistics).
        """
        flat = self.drop_features(targets[target_mask])  # (n, 2, d); identity in eval mode
        n = flat.shape[0]
        zp = self.project_z(z)
        if zp is not None:
            rows = target_mask.nonzero()[:, 0]
            zp = zp[rows].repeat_interleave(2, dim=0)
        t = self.target_encoder(flat.reshape(2 * n, -1))
        r = self.head_from_projection(t, zp).reshape(n, 2)
        return r[:, 0] - r[:, 1]

    def target_probabilities(
        self, batch: EpisodeBatch, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``P(chosen > rejected)`` for every valid target ``(n,)``, in eval semantics (no sampling
        randomness beyond ``generator`` for latent models)."""
        z = self.encode(batch.context, batch.context_mask)
        if isinstance(z, Gaussian):
            probs = torch.zeros(int(batch.target_mask.sum()), device=batch.targets.device)
            for _ in range(self.config.eval_samples):
                eps = torch.randn(z.mean.shape, generator=generator, device=z.mean.device)
                probs += torch.sigmoid(
                    self.pair_margins(batch.targets, batch.target_mask, z.mean + z.scale * eps)
                )
            return probs / self.config.eval_samples
        return torch.sigmoid(self.pair_margins(batch.targets, batch.target_mask, z))

    def loss(self, batch: EpisodeBatch) -> dict[str, torch.Tensor]:
        """Training objective, averaged over episodes: the mean target NLL; for latent models
        ``(sum_t NLL_t + beta_kl * KL(q(z|T) || q(z|C))) / T``, i.e. the negative ELBO per target."""
        z = self.encode(batch.context, batch.context_mask)
        kl = None
        if isinstance(z, Gaussian):
            q_c = z
            q_t = self.encode(batch.targets, batch.target_mask)
            assert isinstance(q_t, Gaussian)
            src = q_t if self.config.train_z_from == "target" else q_c
            z = src.mean + src.scale * torch.randn_like(src.mean)
            kl = kl_normal(q_t, q_c)  # KL(q(z|T) || q(z|C)): the context posterior chases the target one
        margins = self.pair_margins(batch.targets, batch.target_mask, z)
        nll = F.softplus(-margins)  # -log sigmoid(margin)
        rows = batch.target_mask.nonzero()[:, 0]
        counts = batch.target_mask.sum(1).clamp(min=1).to(nll.dtype)
        per_episode = torch.zeros(batch.target_mask.shape[0], dtype=nll.dtype, device=nll.device)
        per_episode = per_episode.index_add(0, rows, nll)
        out: dict[str, torch.Tensor] = {"nll": (per_episode / counts).mean()}
        total = per_episode
        if kl is not None:
            total = total + self.config.beta_kl * kl
            out["kl"] = kl.mean()
        out["loss"] = (total / counts).mean()
        return out

    # -- inference API ---------------------------------------------------------------------------
    def condition(
        self, context_pairs: Any = (), *, featurizer: Featurizer | None = None, allow_empty: bool = True
    ) -> UserState:
        """Summarise one user's context pairs into a :class:`~personalign.np.state.UserState`.

        ``context_pairs``: an array ``(m, 2, d)`` (chosen first), a pair ``(chosen (m, d), rejected
        (m, d))``, or, with ``featurizer``, a sequence of ``(prompt, chosen, rejected)`` strings. Only
        this user's pairs are used; the model is switched to eval mode.
        """
        from personalign.np.state import condition_model

        return condition_model(self, context_pairs, featurizer=featurizer, allow_empty=allow_empty)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, folder: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write ``model.safetensors`` (weights and BatchNorm buffers) and ``model.json`` (config +
        ``metadata``) into ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        _atomic(folder / MODEL_FILE, lambda p: save_file(tensors, str(p)))
        meta = {
            "format": "personalign-np-model-v1",
            "config": self.config.to_dict(),
            "metadata": metadata or {},
        }
        _atomic(folder / MODEL_META, lambda p: p.write_text(json.dumps(meta, indent=2)))
        return folder


def _atomic(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


class BTLRewardModel(RewardModelBase):
    """Unconditional Bradley-Terry reward model: ``Linear(h->h)-BN-ReLU-Linear(h->1)`` on ``t(features)``."""

    def __init__(self, config: NPModelConfig) -> None:
        super().__init__(config)
        h = config.hidden
        self.reward_head = nn.Sequential(nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, 1))

    def head(self, t: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        return self.reward_head(t)


class NPBTLRewardModel(RewardModelBase):
    """Neural-Process BTL reward model conditioned on a user's context pairs."""

    def __init__(self, config: NPModelConfig) -> None:
        super().__init__(config)
        h = config.hidden
        self.context_encoder = ContextEncoder(config, 2 * h if config.latent else h)
        self.reward_head = nn.Sequential(nn.Linear(2 * h, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, 1))

    @property
    def is_conditional(self) -> bool:
        return True

    @property
    def z_dim(self) -> int:
        return self.config.hidden

    def encode(self, pairs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | Gaussian:
        out = self.context_encoder(self.drop_features(pairs), mask)
        if not self.config.latent:
            return out
        mean, raw = out.chunk(2, dim=-1)
        return Gaussian(mean, F.softplus(raw) + self.config.min_sigma)

    def head(self, t: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if z is None:
            raise ValueError("NP-BTL needs a context representation z")
        return self.reward_head(torch.cat([t, z], dim=-1))

    def project_z(self, z: torch.Tensor | None) -> torch.Tensor | None:
        if z is None:
            raise ValueError("NP-BTL needs a context representation z")
        lin = self.reward_head[0]
        return F.linear(z, lin.weight[:, self.config.hidden :], lin.bias)

    def head_from_projection(self, t: torch.Tensor, z_proj: torch.Tensor | None) -> torch.Tensor:
        lin = self.reward_head[0]
        pre = F.linear(t, lin.weight[:, : self.config.hidden]) + z_proj
        return self.reward_head[3](self.reward_head[2](self.reward_head[1](pre))).squeeze(-1)


class MixtureBTLRewardModel(RewardModelBase):
    """Conditional BT reward model with a discrete latent user type (ours, beyond the spec).

    ``K = num_components`` reward heads ``Linear(h->h)-BN-ReLU-Linear(h->1)`` share the target encoder.
    A user is one unknown head: conditioning on context pairs ``C`` gives the posterior by Bayes' rule
    over a uniform prior, ``P(k | C) ∝ Π_{(c, r) ∈ C} σ(r_k(c) − r_k(r))``, with no encoder to learn,
    and a target is predicted by ``Σ_k P(k | C) σ(r_k(a) − r_k(b))``. Training maximises each episode's
    marginal likelihood ``Σ_k (1/K) Π_t σ(Δ_k(t))`` over all its targets jointly (a mixture of BT models
    fitted EM-style by gradient descent), so the heads specialise to groups of users without type labels.
    ``encode`` returns the posterior ``(B, K)`` in place of ``z``.
    """

    def __init__(self, config: NPModelConfig) -> None:
        super().__init__(config)
        h = config.hidden
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Linear(h, 1))
            for _ in range(config.num_components)
        )

    @property
    def is_conditional(self) -> bool:
        return True

    @property
    def num_components(self) -> int:
        return self.config.num_components

    def _head_rewards(self, t: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(t) for head in self.heads], dim=-1)

    def component_rewards(self, features: torch.Tensor) -> torch.Tensor:
        """Rewards ``(n, K)`` of ``n`` options ``(n, d)`` under every head (no feature dropout)."""
        return self._head_rewards(self.target_encoder(features))

    def head(self, t: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Expected reward ``(n, 1)`` under posterior weights ``z`` ``(n, K)`` (uniform if ``None``)."""
        r = self._head_rewards(t)
        w = torch.full_like(r, 1.0 / self.num_components) if z is None else z
        return (r * w).sum(-1, keepdim=True)

    def component_margins(self, pairs: torch.Tensor) -> torch.Tensor:
        """``r_k(first) − r_k(second)`` ``(n, K)`` of pairs ``(n, 2, d)`` (feature dropout in training)."""
        n = pairs.shape[0]
        r = self.component_rewards(self.drop_features(pairs).reshape(2 * n, -1)).reshape(n, 2, -1)
        return r[:, 0] - r[:, 1]

    def _log_likelihoods(self, pairs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``Σ log σ(Δ_k)`` over each episode's valid pairs -> ``(B, K)`` (zero for an empty episode)."""
        out = pairs.new_zeros(mask.shape[0], self.num_components)
        if mask.numel() == 0 or not bool(mask.any()):
            return out
        return out.index_add(0, mask.nonzero()[:, 0], F.logsigmoid(self.component_margins(pairs[mask])))

    def encode(self, pairs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Posterior ``P(k | C)`` ``(B, K)``; uniform for an empty context."""
        return torch.softmax(self._log_likelihoods(pairs, mask), dim=-1)

    def target_probabilities(
        self, batch: EpisodeBatch, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        post = self.encode(batch.context, batch.context_mask)
        rows = batch.target_mask.nonzero()[:, 0]
        p = torch.sigmoid(self.component_margins(batch.targets[batch.target_mask]))
        return (p * post[rows]).sum(-1)

    def loss(self, batch: EpisodeBatch) -> dict[str, torch.Tensor]:
        """Negative marginal log-likelihood of each episode's targets under the mixture, per target."""
        ll = self._log_likelihoods(batch.targets, batch.target_mask)
        counts = batch.target_mask.sum(1).clamp(min=1).to(ll.dtype)
        nll = (math.log(self.num_components) - torch.logsumexp(ll, dim=-1)) / counts
        return {"loss": nll.mean(), "nll": nll.mean()}


RewardModel = BTLRewardModel | NPBTLRewardModel | MixtureBTLRewardModel


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_model(config: NPModelConfig, seed: int | None = 0) -> RewardModel:
    """Construct the model named by ``config.kind`` with weights initialised from ``seed`` (without
    disturbing the global torch RNG)."""
    cls = {"np-btl": NPBTLRewardModel, "btl": BTLRewardModel, "mixture-btl": MixtureBTLRewardModel}[
        config.kind
    ]
    if seed is None:
        return cls(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(config)


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[RewardModel, dict[str, Any]]:
    """Load a model saved with :meth:`RewardModelBase.save`; returns ``(model, metadata)`` in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta_path, weights = folder / MODEL_META, folder / MODEL_FILE
    for p in (meta_path, weights):
        if not p.is_file():
            raise CheckpointError(f"{p}: missing; expected a model folder written by `personalign np train`")
    try:
        meta = json.loads(meta_path.read_text())
        config = NPModelConfig.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{meta_path}: not a valid model description ({err})") from err
    model = build_model(config, seed=None)
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: tensors do not match the config (missing {missing}, unexpected {unexpected})"
        )
    model.to(resolve_device(device)).eval()
    return model, meta.get("metadata", {})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
