"""Random models that use the shared tiny tokenizer (``tests/tiny_tokenizer.py``)."""

from __future__ import annotations

import torch

from circuitlab import HookedTransformer, TransformerConfig
from tests.tiny_tokenizer import END_OF_TEXT, VOCAB_SIZE, tiny_tokenizer

__all__ = ["END_OF_TEXT", "VOCAB_SIZE", "model_with_tokenizer", "randomize_weights", "tiny_tokenizer"]


def model_with_tokenizer(n_layers: int = 2, seed: int = 0, **config: object) -> HookedTransformer:
    """A random model whose vocabulary is ``tiny_tokenizer``'s; ``config`` overrides ``TransformerConfig`` fields."""
    tokenizer = tiny_tokenizer()
    fields: dict[str, object] = {"d_model": 32, "n_ctx": 64, "n_heads": 4, "seed": seed}
    fields.update(config)
    cfg = TransformerConfig(n_layers=n_layers, d_vocab=len(tokenizer), **fields)  # type: ignore[arg-type]
    return HookedTransformer(cfg, tokenizer=tokenizer)


def randomize_weights(model: HookedTransformer, seed: int = 0, scale: float = 0.3) -> HookedTransformer:
    """Give every parameter random values, biases and norm weights included, so tests exercise them all."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * scale
            # Norm weights stay near 1 so activations keep a sensible size.
            param.copy_(1.0 + noise if name.endswith(".w") else noise)
    return model
