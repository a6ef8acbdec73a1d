"""One tiny byte-level BPE tokenizer for every test that needs text (nothing is ever downloaded).

It is trained with circuitlab's own ``train_tokenizer`` on a few sentences (a few milliseconds, once
per process): ``<|endoftext|>`` is id 0 and serves as BOS, EOS and padding, as in GPT-2.
"""

from __future__ import annotations

import functools

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from circuitlab.data.tokenizer import END_OF_TEXT, as_hugging_face, train_tokenizer

TRAINING_TEXTS = (
    "hello world",
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello world, the cat sat on the mat and the dog sat on the log.",
    "Attention heads move information between positions; MLPs act on each position alone.",
    "An induction head copies the token that followed the previous occurrence of the current token.",
)
# 256 byte tokens, END_OF_TEXT and the merges learned from TRAINING_TEXTS.
VOCAB_SIZE = 320

__all__ = ["END_OF_TEXT", "VOCAB_SIZE", "tiny_tokenizer"]


@functools.cache
def _trained_json() -> str:
    return train_tokenizer(TRAINING_TEXTS, vocab_size=VOCAB_SIZE, min_frequency=1).to_str()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh wrapper around the shared trained tokenizer (tests may change padding side etc.)."""
    return as_hugging_face(Tokenizer.from_str(_trained_json()))
