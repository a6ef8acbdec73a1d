"""Modular addition data: every pair, correct labels, and a deterministic 30% training split."""

from __future__ import annotations

import pytest
import torch

from circuitlab.data import modular_addition_dataset
from circuitlab.errors import ConfigError


def test_train_and_test_sizes_for_p_113() -> None:
    data = modular_addition_dataset(p=113, train_fraction=0.3, seed=0)
    assert data.train_tokens.shape == (3830, 3)
    assert data.test_tokens.shape == (12769 - 3830, 3)


def test_train_and_test_split_every_pair_exactly_once() -> None:
    data = modular_addition_dataset(p=113, seed=0)
    together = torch.cat([data.train_indices, data.test_indices]).sort().values
    assert torch.equal(together, torch.arange(113 * 113))


def test_tokens_are_a_b_equals_and_labels_are_the_sum_mod_p() -> None:
    data = modular_addition_dataset(p=7, seed=0)
    assert data.tokens.shape == (49, 3) and data.d_vocab == 8
    assert torch.all(data.tokens[:, 2] == data.equals_token)
    assert torch.equal(data.labels, (data.tokens[:, 0] + data.tokens[:, 1]) % 7)
    assert data.tokens[10].tolist() == [1, 3, 7] and data.labels[10].item() == 4


def test_every_pair_appears() -> None:
    data = modular_addition_dataset(p=11, seed=0)
    assert len({tuple(row) for row in data.tokens[:, :2].tolist()}) == 121


def test_split_depends_only_on_the_seed() -> None:
    first, again, other = (modular_addition_dataset(seed=seed).train_indices for seed in (1, 1, 2))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_train_labels_belong_to_train_tokens() -> None:
    data = modular_addition_dataset(p=13, seed=0)
    assert torch.equal(data.train_labels, (data.train_tokens[:, 0] + data.train_tokens[:, 1]) % 13)


@pytest.mark.parametrize("train_fraction", [0.0, 1.0])
def test_train_fraction_must_leave_both_splits_non_empty(train_fraction: float) -> None:
    with pytest.raises(ConfigError, match="train_fraction"):
        modular_addition_dataset(p=113, train_fraction=train_fraction)
