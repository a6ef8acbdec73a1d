"""Tiny stand-in models, published into a zoo folder under tmp_path (the package's own zoo is never written)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from circuitlab import HookedTransformer, TransformerConfig
from circuitlab.zoo import ModelCard, publish
from tests.tiny_tokenizer import VOCAB_SIZE, tiny_tokenizer

TOKENIZER = "tiny-320"


def stand_in_model(seed: int = 0, with_tokenizer: bool = True, d_vocab: int = VOCAB_SIZE) -> HookedTransformer:
    """A random 2-layer model whose biases and norm weights are random too, so every tensor is exercised."""
    cfg = TransformerConfig(n_layers=2, d_model=32, n_ctx=16, d_vocab=d_vocab, n_heads=4, seed=seed)
    model = HookedTransformer(cfg, tokenizer=tiny_tokenizer() if with_tokenizer else None)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1.0 + 0.2 * noise if name.endswith(".w") else 0.1 * noise)
    return model.eval()


def stand_in_card(name: str, with_tokenizer: bool = True, **fields: Any) -> ModelCard:
    values: dict[str, Any] = dict(
        summary=f"{name}: a random stand-in",
        recipe="stand-in",
        training_data="none (random weights)",
        tokenizer=TOKENIZER if with_tokenizer else None,
    )
    values.update(fields)
    return ModelCard(name=name, **values)


def sample_tokens(d_vocab: int = VOCAB_SIZE) -> torch.Tensor:
    return torch.randint(0, d_vocab, (2, 12), generator=torch.Generator().manual_seed(0))


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """An empty zoo folder."""
    return tmp_path / "weights"


@pytest.fixture
def publish_stand_in(zoo: Path) -> Callable[..., HookedTransformer]:
    """Publish ``stand_in_model(seed, with_tokenizer)`` into ``zoo`` as ``name``; returns the published model."""

    def publish_one(
        name: str, seed: int = 0, with_tokenizer: bool = True, dtype: torch.dtype = torch.float16, **options: Any
    ) -> HookedTransformer:
        model = stand_in_model(seed, with_tokenizer)
        publish(model, name, stand_in_card(name, with_tokenizer), dtype=dtype, weights_root=zoo, **options)
        return model

    return publish_one
