"""Random models whose every bias and norm weight is non-trivial, for weight-processing and cache tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from circuitlab import HookedTransformer, TransformerConfig


def randomised_model(seed: int = 0, **overrides) -> HookedTransformer:
    """A small model with weights ~ N(0, 0.1), biases ~ N(0, 0.3) and norm weights ~ 1 + N(0, 0.3).

    ``init_weights`` leaves biases at 0 and norm weights at 1, which would hide any mistake in how
    they are folded or attributed.
    """
    values = dict(n_layers=2, d_model=32, n_ctx=16, d_vocab=50, n_heads=4, d_mlp=48, seed=seed, init_range=0.1)
    values.update(overrides)
    if values.get("attn_only"):
        values.pop("d_mlp")
    model = HookedTransformer(TransformerConfig(**values)).eval()
    generator = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, param in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "w":
                param.copy_(1 + 0.3 * torch.randn(param.shape, generator=generator))
            elif not leaf.startswith("W_"):
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    return model


@pytest.fixture
def make_model() -> Callable[..., HookedTransformer]:
    """``make_model(**config_overrides)`` builds a ``randomised_model``."""
    return randomised_model


@pytest.fixture
def sample_tokens() -> torch.Tensor:
    """Three sequences of ten token ids below 50."""
    return torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(0))
