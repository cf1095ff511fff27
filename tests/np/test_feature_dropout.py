"""feature_dropout: a training-time regularizer that must leave inference untouched."""

from __future__ import annotations

import pytest
import torch

from personalign.np.config import NPModelConfig
from personalign.np.models import build_model


def _inputs(d: int = 6):
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(2, 4, 2, d, generator=g)
    targets = torch.randn(2, 5, 2, d, generator=g)
    return ctx, torch.ones(2, 4, dtype=torch.bool), targets, torch.ones(2, 5, dtype=torch.bool)


@pytest.mark.parametrize("kind", ["np-btl", "btl"])
def test_feature_dropout_is_identity_in_eval_mode_and_random_in_training(kind):
    ctx, cmask, targets, tmask = _inputs()
    plain = build_model(NPModelConfig(kind=kind, feature_dim=6, hidden=16, num_heads=2), seed=0)
    dropped = build_model(
        NPModelConfig(kind=kind, feature_dim=6, hidden=16, num_heads=2, feature_dropout=0.5), seed=0
    )
    plain.eval()
    dropped.eval()
    with torch.no_grad():
        z_p = plain.encode(ctx, cmask)
        z_d = dropped.encode(ctx, cmask)
        assert torch.equal(plain.pair_margins(targets, tmask, z_p), dropped.pair_margins(targets, tmask, z_d))
        dropped.train()
        torch.manual_seed(1)
        a = dropped.pair_margins(targets, tmask, dropped.encode(ctx, cmask))
        b = dropped.pair_margins(targets, tmask, dropped.encode(ctx, cmask))
    assert not torch.equal(a, b)


def test_feature_dropout_is_validated():
    with pytest.raises(ValueError, match="feature_dropout"):
        NPModelConfig(feature_dropout=1.0)


def test_feature_dropout_spares_the_last_columns():
    model = build_model(
        NPModelConfig(
            kind="btl",
            feature_dim=6,
            hidden=16,
            num_heads=2,
            feature_dropout=0.9,
            feature_dropout_keep_last=1,
        ),
        seed=0,
    )
    model.train()
    x = torch.ones(50, 6)
    torch.manual_seed(0)
    out = model.drop_features(x)
    assert torch.equal(out[:, -1], x[:, -1])
    assert (out[:, :-1] == 0).any()
    with pytest.raises(ValueError, match="keep_last"):
        NPModelConfig(feature_dim=6, feature_dropout_keep_last=6)
