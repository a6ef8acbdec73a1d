"""Modular addition ``a + b mod p`` as a sequence task (the grokking set-up of Power et al. and Nanda et al.)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from jaxtyping import Int
from torch import Tensor

from circuitlab.data.synthetic.seeding import Seed, torch_generator
from circuitlab.errors import ConfigError


@dataclass(frozen=True)
class ModularAdditionData:
    """All ``p * p`` pairs as ``[a, b, =]`` with ``=`` the token ``p`` (vocabulary ``p + 1``).

    Pair ``i`` is ``a = i // p``, ``b = i % p``; the label is ``(a + b) % p``, predicted at the last
    position. ``train_indices`` and ``test_indices`` split the pairs (each sorted, together all of them).
    """

    p: int
    tokens: Int[Tensor, "pair 3"]
    labels: Int[Tensor, " pair"]
    train_indices: Int[Tensor, " n_train"]
    test_indices: Int[Tensor, " n_test"]

    @property
    def equals_token(self) -> int:
        return self.p

    @property
    def d_vocab(self) -> int:
        return self.p + 1

    @property
    def train_tokens(self) -> Int[Tensor, "n_train 3"]:
        return self.tokens[self.train_indices]

    @property
    def train_labels(self) -> Int[Tensor, " n_train"]:
        return self.labels[self.train_indices]

    @property
    def test_tokens(self) -> Int[Tensor, "n_test 3"]:
        return self.tokens[self.test_indices]

    @property
    def test_labels(self) -> Int[Tensor, " n_test"]:
        return self.labels[self.test_indices]


def modular_addition_dataset(p: int = 113, train_fraction: float = 0.3, seed: Seed = 0) -> ModularAdditionData:
    """Every pair ``(a, b)`` of ``[0, p)``, with a random ``floor(train_fraction * p * p)`` of them for training."""
    if p < 2:
        raise ConfigError(f"the modulus p must be at least 2, got {p}")
    if not 0.0 < train_fraction < 1.0:
        raise ConfigError(f"train_fraction must be strictly between 0 and 1, got {train_fraction}")
    a = rearrange(torch.arange(p), "a -> a 1").expand(p, p).flatten()
    b = rearrange(torch.arange(p), "b -> 1 b").expand(p, p).flatten()
    equals = torch.full_like(a, p)
    tokens = torch.stack([a, b, equals], dim=1)
    labels = (a + b) % p
    n_train = int(train_fraction * p * p)
    order = torch.randperm(p * p, generator=torch_generator(seed))
    train_indices = order[:n_train].sort().values
    test_indices = order[n_train:].sort().values
    return ModularAdditionData(p, tokens, labels, train_indices, test_indices)
