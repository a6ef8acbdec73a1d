"""A tiny byte-level BPE tokenizer trained in memory, and random models that use it.

Tests that need text never download a tokenizer: training this one on a few sentences takes a few
milliseconds, and is done once per test process.
"""

from __future__ import annotations

import functools

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from circuitlab import HookedTransformer, TransformerConfig

END_OF_TEXT = "<|endoftext|>"
TRAINING_TEXTS = (
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, the cat sat on the mat and the dog sat on the log.",
    "An induction head copies the token that followed the previous occurrence of the current token.",
)
# 256 byte tokens, END_OF_TEXT, and the merges learned from TRAINING_TEXTS.
VOCAB_SIZE = 320


@functools.cache
def _trained_tokenizer_json() -> str:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXTS, trainer)
    return tokenizer.to_str()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-like tokenizer with ``<|endoftext|>`` as BOS, EOS and padding (a fresh object per call)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json()),
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
    )


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
