"""List reversal and sorting: layout, answers and where they are."""

from __future__ import annotations

import pytest
import torch

from circuitlab.data import list_reversal_batch, list_sorting_batch
from circuitlab.errors import ConfigError


def test_reversal_layout_is_list_separator_reversed_list() -> None:
    batch = list_reversal_batch(n_batch=8, list_len=5, n_values=10, seed=0)
    assert batch.tokens.shape == (8, 11)
    assert batch.separator_token == 10
    assert torch.all(batch.tokens[:, 5] == 10)
    assert torch.equal(batch.tokens[:, 6:], batch.tokens[:, :5].flip(dims=[1]))


def test_targets_are_the_tokens_after_the_separator() -> None:
    batch = list_reversal_batch(n_batch=8, list_len=5, n_values=10, seed=0)
    assert batch.target_positions.tolist() == [6, 7, 8, 9, 10]
    assert batch.prediction_positions.tolist() == [5, 6, 7, 8, 9]
    assert torch.equal(batch.targets, batch.tokens[:, :5].flip(dims=[1]))


def test_bos_shifts_every_position_by_one() -> None:
    batch = list_reversal_batch(n_batch=4, list_len=3, n_values=10, seed=0, bos_token=11)
    assert torch.all(batch.tokens[:, 0] == 11) and torch.all(batch.tokens[:, 4] == 10)
    assert batch.target_positions.tolist() == [5, 6, 7]
    assert batch.d_vocab == 12


def test_sorting_targets_are_the_list_sorted() -> None:
    batch = list_sorting_batch(n_batch=16, list_len=6, n_values=10, seed=0)
    assert torch.equal(batch.targets, batch.tokens[:, :6].sort(dim=1).values)
    assert batch.d_vocab == 11


def test_distinct_sorting_lists_have_no_repeated_values() -> None:
    batch = list_sorting_batch(n_batch=16, list_len=6, n_values=8, seed=0, distinct=True)
    assert all(len(set(row)) == 6 for row in batch.tokens[:, :6].tolist())


def test_same_seed_gives_the_same_batch() -> None:
    assert torch.equal(list_sorting_batch(4, 5, 10, seed=3).tokens, list_sorting_batch(4, 5, 10, seed=3).tokens)


def test_separator_inside_the_value_range_is_rejected() -> None:
    with pytest.raises(ConfigError, match="separator"):
        list_reversal_batch(n_batch=2, list_len=3, n_values=10, seed=0, separator_token=4)
