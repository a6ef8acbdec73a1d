"""Shared fixtures: tiny random GPT-2 checkpoints in Hugging Face's format, with a tiny trained tokenizer.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in memory on a few sentences, and
the checkpoints are random ``transformers.GPT2LMHeadModel``s written with ``save_pretrained``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from tests import tiny_tokenizer as shared_tokenizer

# The test models are tiny: handing work to a second thread costs far more than it saves (measured:
# a 2-core run of tests/model took 15-26 s with 2 threads per process, 0.7 s with 1).
torch.set_num_threads(1)

TOKENIZER_VOCAB_SIZE = shared_tokenizer.VOCAB_SIZE


@pytest.fixture(scope="session", autouse=True)
def private_circuitlab_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests build the corpus, tokenizer and token streams in a folder of their own, never the user's cache."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("CIRCUITLAB_CACHE", str(tmp_path_factory.mktemp("circuitlab-cache")))
    yield
    monkeypatch.undo()


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer with ``<|endoftext|>`` as BOS, EOS and padding."""
    return shared_tokenizer.tiny_tokenizer()


def build_tiny_hf_gpt2(seed: int = 0, **config: Any) -> GPT2LMHeadModel:
    """A random GPT-2 (default: 2 layers, d_model 32, 4 heads, 32 positions, vocab 320) in eval mode.

    Every bias and LayerNorm weight is randomised too (Hugging Face initialises them to 0 and 1),
    so loading and weight processing are tested on all of them.
    """
    values: dict[str, Any] = dict(
        n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=TOKENIZER_VOCAB_SIZE, bos_token_id=0, eos_token_id=0
    )
    values.update(config)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(**values)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if ".ln_" in name and name.endswith(".weight"):
                param.copy_(1.0 + 0.2 * noise)
            else:
                # Larger than GPT-2's 0.02 (and biases too), so attention patterns are far from uniform.
                param.copy_(0.1 * noise)
    return model


@dataclass(frozen=True)
class HFCheckpoint:
    """A Hugging Face checkpoint folder and the objects that wrote it (treat the folder as read-only)."""

    folder: Path
    model: GPT2LMHeadModel
    tokenizer: PreTrainedTokenizerFast | None


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def make_hf_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast
) -> Callable[..., HFCheckpoint]:
    """Write a random GPT-2 (``build_tiny_hf_gpt2(seed, **config)``) and, optionally, the tokenizer to a new folder."""

    def make(seed: int = 0, with_tokenizer: bool = True, **config: Any) -> HFCheckpoint:
        folder = tmp_path_factory.mktemp("hf_gpt2")
        model = build_tiny_hf_gpt2(seed, **config)
        model.save_pretrained(folder)
        if with_tokenizer:
            tiny_tokenizer.save_pretrained(folder)
        return HFCheckpoint(folder=folder, model=model, tokenizer=tiny_tokenizer if with_tokenizer else None)

    return make


@pytest.fixture(scope="session")
def hf_checkpoint(make_hf_checkpoint: Callable[..., HFCheckpoint]) -> HFCheckpoint:
    """The default tiny GPT-2 checkpoint with its tokenizer, shared by the whole session."""
    return make_hf_checkpoint()
