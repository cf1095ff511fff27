"""Inference: a conditioned user (:class:`UserState`) and the :class:`Featurizer` protocol for text.

``state = model.condition(context_pairs)`` runs the context encoder **once** on this user's pairs
only; ``state.reward(features)`` then scores any number of responses with one batched pass of the
target encoder and reward head. For NP-BTL the ``z`` half of the head's first layer is folded into a
per-user bias at conditioning time, so scoring costs the same as an unconditional MLP of that size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

from personalign.np.errors import EmptyPairsError, FeatureDimensionError, NonFiniteFeaturesError, NPInputError

if TYPE_CHECKING:
    from personalign.np.models import RewardModel


@runtime_checkable
class Featurizer(Protocol):
    """Maps ``(prompt, response)`` texts to option features ``(n, dim)`` float32 (e.g. ``[e(x); e(y)]``)."""

    @property
    def dim(self) -> int: ...

    def features(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...


def check_features(x: Any, dim: int, *, what: str = "features", allow_empty: bool = False) -> np.ndarray:
    """Validate option features -> float32 array ``(n, dim)``; one vector ``(dim,)`` becomes ``(1, dim)``.

    Raises :class:`FeatureDimensionError`, :class:`NonFiniteFeaturesError` or :class:`EmptyPairsError`.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise FeatureDimensionError(f"{what}: expected numeric array of shape (n, {dim}) ({err})") from err
    if arr.ndim == 1 and dim > 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    elif arr.ndim == 1 and dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise FeatureDimensionError(f"{what}: expected shape (n, {dim}), got {tuple(arr.shape)}")
    if arr.shape[0] == 0 and not allow_empty:
        raise EmptyPairsError(f"{what}: expected at least one row, got none")
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise NonFiniteFeaturesError(f"{what}: row {row} contains NaN or infinite values")
    return arr


def check_pairs(pairs: Any, dim: int, *, what: str = "pairs", allow_empty: bool = False) -> np.ndarray:
    """Validate preference pairs -> float32 ``(m, 2, dim)`` (chosen first).

    Accepts an array ``(m, 2, dim)`` (``(m, 2)`` when ``dim == 1``) or a tuple ``(chosen, rejected)``
    of equally long ``(m, dim)`` arrays.
    """
    if isinstance(pairs, tuple) and len(pairs) == 2 and not np.isscalar(pairs[0]):
        chosen = check_features(pairs[0], dim, what=f"{what} (chosen)", allow_empty=True)
        rejected = check_features(pairs[1], dim, what=f"{what} (rejected)", allow_empty=True)
        if chosen.shape != rejected.shape:
            raise FeatureDimensionError(f"{what}: {len(chosen)} chosen but {len(rejected)} rejected options")
        arr = np.stack([chosen, rejected], axis=1)
    else:
        if isinstance(pairs, torch.Tensor):
            pairs = pairs.detach().cpu().numpy()
        try:
            arr = np.asarray(pairs, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise FeatureDimensionError(
                f"{what}: expected numeric array of shape (m, 2, {dim}) ({err})"
            ) from err
        if arr.size == 0:
            arr = np.zeros((0, 2, dim), dtype=np.float32)
        elif arr.ndim == 2 and dim == 1 and arr.shape[1] == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[1:] != (2, dim):
            raise FeatureDimensionError(f"{what}: expected shape (m, 2, {dim}), got {tuple(arr.shape)}")
    if arr.shape[0] == 0 and not allow_empty:
        raise EmptyPairsError(f"{what}: expected at least one pair, got none")
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise NonFiniteFeaturesError(f"{what}: pair {row} contains NaN or infinite values")
    return arr


def _text_pairs(pairs: Sequence[Any], featurizer: Featurizer, what: str) -> np.ndarray:
    prompts, chosen, rejected = [], [], []
    for i, p in enumerate(pairs):
        if isinstance(p, dict):
            p = (p.get("prompt"), p.get("chosen"), p.get("rejected"))
        if not (isinstance(p, (tuple, list)) and len(p) == 3 and all(isinstance(s, str) for s in p)):
            raise NPInputError(f"{what}[{i}]: expected (prompt, chosen, rejected) strings, got {p!r:.120}")
        if not p[1].strip() or not p[2].strip():
            raise EmptyPairsError(f"{what}[{i}]: chosen and rejected responses must be non-empty")
        prompts.append(p[0])
        chosen.append(p[1])
        rejected.append(p[2])
    if not prompts:
        return np.zeros((0, 2, featurizer.dim), dtype=np.float32)
    fc = check_features(featurizer.features(prompts, chosen), featurizer.dim, what=f"{what} (chosen)")
    fr = check_features(featurizer.features(prompts, rejected), featurizer.dim, what=f"{what} (rejected)")
    return np.stack([fc, fr], axis=1)


def _is_text(pairs: Any) -> bool:
    first = pairs[0]
    return isinstance(first, dict) or (
        isinstance(first, (tuple, list)) and len(first) == 3 and isinstance(first[0], str)
    )


def condition_model(
    model: RewardModel, context_pairs: Any, *, featurizer: Featurizer | None = None, allow_empty: bool = True
) -> UserState:
    """Implementation of ``model.condition`` (see :meth:`RewardModelBase.condition`)."""
    d = model.config.feature_dim
    if featurizer is not None and featurizer.dim != d:
        raise FeatureDimensionError(f"featurizer gives {featurizer.dim}-d features but the model expects {d}")
    if (
        featurizer is not None
        and isinstance(context_pairs, (list, tuple))
        and context_pairs
        and _is_text(context_pairs)
    ):
        pairs = _text_pairs(context_pairs, featurizer, "context")
    else:
        pairs = check_pairs(context_pairs, d, what="context", allow_empty=True)
    if pairs.shape[0] == 0 and not allow_empty:
        raise EmptyPairsError(
            "context: expected at least one pair, got none (pass allow_empty=True for the prior)"
        )
    model.eval()
    dev = model.device
    with torch.no_grad():
        x = torch.from_numpy(pairs).to(dev).unsqueeze(0)
        mask = torch.ones(1, pairs.shape[0], dtype=torch.bool, device=dev)
        enc = model.encode(x, mask)
        from personalign.np.models import MixtureBTLRewardModel

        if isinstance(model, MixtureBTLRewardModel):  # enc is the posterior over the heads
            return UserState(model, None, int(pairs.shape[0]), featurizer, weights=enc[0])
        z = None
        if enc is not None:
            from personalign.np.models import Gaussian

            if isinstance(enc, Gaussian):
                g = torch.Generator(device=dev).manual_seed(0)
                eps = torch.randn((model.config.eval_samples, enc.mean.shape[-1]), generator=g, device=dev)
                z = enc.mean + enc.scale * eps  # (S, h)
            else:
                z = enc  # (1, h)
    return UserState(model, z, int(pairs.shape[0]), featurizer)


@dataclass(frozen=True)
class UserState:
    """One conditioned user. Build it with ``model.condition(...)``.

    Attributes:
        model: the reward model (kept in eval mode).
        z: ``(S, h)`` context representation (``S = 1`` deterministic, ``eval_samples`` latent), or
            ``None`` for unconditional models.
        num_context: how many context pairs it was computed from.
        featurizer: turns ``(prompt, response)`` strings into features (text tasks).
        weights: ``(K,)`` posterior over the heads of a ``mixture-btl`` model (``None`` otherwise):
            rewards are the posterior-weighted mean of the heads' rewards, preference probabilities
            the posterior-weighted mean of the heads' probabilities.
    """

    model: RewardModel
    z: torch.Tensor | None
    num_context: int
    featurizer: Featurizer | None = None
    weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        # Fold the z half of the head's first Linear into a per-user bias (computed once).
        bias = w_t = None
        if self.z is not None:
            lin = self.model.reward_head[0]
            h = self.model.config.hidden
            with torch.no_grad():
                bias = self.z @ lin.weight[:, h:].T + lin.bias  # (S, h)
                w_t = lin.weight[:, :h].contiguous()
        object.__setattr__(self, "_bias", bias)
        object.__setattr__(self, "_w_t", w_t)
        object.__setattr__(self, "_device", self.model.device)

    @property
    def feature_dim(self) -> int:
        return self.model.config.feature_dim

    def _features(self, x: Any, responses: Any, what: str) -> np.ndarray:
        if responses is not None or isinstance(x, str):
            if self.featurizer is None:
                raise NPInputError(
                    f"{what}: scoring text needs a featurizer (model.condition(..., featurizer=...))"
                )
            prompts = [x] if isinstance(x, str) else list(x)
            resp = [responses] if isinstance(responses, str) else list(responses)
            if len(prompts) == 1 and len(resp) > 1:
                prompts = prompts * len(resp)
            if len(prompts) != len(resp):
                raise NPInputError(f"{what}: {len(prompts)} prompts but {len(resp)} responses")
            if not resp:
                raise EmptyPairsError(f"{what}: expected at least one response, got none")
            if any(not isinstance(r, str) or not r.strip() for r in resp):
                raise EmptyPairsError(f"{what}: responses must be non-empty strings")
            x = self.featurizer.features(prompts, resp)
        return check_features(x, self.feature_dim, what=what)

    def _rewards_tensor(self, feats: np.ndarray) -> torch.Tensor:
        """``(S, n)`` rewards (``S`` latent samples or mixture heads, 1 otherwise)."""
        m = self.model
        with torch.no_grad():
            x = torch.from_numpy(feats).to(self._device)  # type: ignore[attr-defined]
            if self.weights is not None:
                return m.component_rewards(x).T  # type: ignore[union-attr]
            t = m.target_encoder(x)  # (n, h)
            head = m.reward_head
            bias = self._bias  # type: ignore[attr-defined]
            if bias is None:
                return head(t).squeeze(-1).unsqueeze(0)
            if bias.shape[0] == 1:
                pre = torch.nn.functional.linear(t, self._w_t, bias[0])  # type: ignore[attr-defined]
                return head[3](head[2](head[1](pre))).reshape(1, -1)
            pre = torch.nn.functional.linear(t, self._w_t).unsqueeze(0) + bias.unsqueeze(1)  # type: ignore[attr-defined]
            s, n, h = pre.shape
            return head[3](head[2](head[1](pre.reshape(s * n, h)))).reshape(s, n)

    def reward(self, features_or_prompts: Any, responses: Any = None) -> np.ndarray:
        """Rewards of ``n`` responses -> ``(n,)`` float array.

        Call as ``reward(features)`` with ``(n, d)`` features, or ``reward(prompt, responses)`` /
        ``reward(prompts, responses)`` with text when the state has a featurizer. Latent models return
        the mean reward over their ``z`` samples, mixture models the posterior-weighted mean over heads.
        """
        feats = self._features(features_or_prompts, responses, "responses")
        return self._average(self._rewards_tensor(feats)).cpu().numpy()

    def _average(self, rows: torch.Tensor) -> torch.Tensor:
        """Average ``(S, n)`` over its rows: posterior-weighted for a mixture, uniform otherwise."""
        if self.weights is not None:
            return (self.weights.unsqueeze(1) * rows).sum(0)
        return rows[0] if rows.shape[0] == 1 else rows.mean(0)

    def preference_probability(self, *args: Any) -> np.ndarray:
        """``P(a > b)`` for each pair: ``(a, b)`` feature arrays ``(n, d)``, or ``(prompt, a, b)`` texts."""
        if len(args) == 3:
            prompt, a, b = args
            fa, fb = self._features(prompt, a, "a"), self._features(prompt, b, "b")
        elif len(args) == 2:
            fa = check_features(args[0], self.feature_dim, what="a")
            fb = check_features(args[1], self.feature_dim, what="b")
        else:
            raise NPInputError("preference_probability takes (a, b) features or (prompt, a, b) texts")
        if fa.shape != fb.shape:
            raise FeatureDimensionError(f"a has {len(fa)} options but b has {len(fb)}")
        r = self._rewards_tensor(np.concatenate([fa, fb]))
        n = fa.shape[0]
        return self._average(torch.sigmoid(r[:, :n] - r[:, n:])).cpu().numpy()

    def prefers(self, *args: Any) -> np.ndarray:
        """Whether the user prefers ``a`` over ``b`` (``P(a > b) > 0.5``), elementwise; same arguments as
        :meth:`preference_probability`."""
        return self.preference_probability(*args) > 0.5
