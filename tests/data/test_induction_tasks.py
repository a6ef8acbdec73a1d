"""Repeated random tokens for induction: exact repeats and repeats of random length at random offsets."""

from __future__ import annotations

import pytest
import torch

from circuitlab.data import repeated_random_tokens, repeated_span_tokens
from circuitlab.errors import ConfigError


def test_repeated_tokens_with_bos_have_one_plus_twice_seq_len_positions() -> None:
    tokens = repeated_random_tokens(n_batch=3, seq_len=10, d_vocab=50, seed=0, bos_token=0)
    assert tokens.shape == (3, 21)
    assert torch.all(tokens[:, 0] == 0)


def test_repeated_tokens_without_bos_have_twice_seq_len_positions() -> None:
    assert repeated_random_tokens(n_batch=3, seq_len=10, d_vocab=50, seed=0).shape == (3, 20)


def test_second_half_repeats_the_first() -> None:
    tokens = repeated_random_tokens(n_batch=4, seq_len=12, d_vocab=50, seed=0, bos_token=0)
    assert torch.equal(tokens[:, 1:13], tokens[:, 13:])


def test_random_tokens_avoid_bos_and_excluded_ids() -> None:
    tokens = repeated_random_tokens(n_batch=64, seq_len=32, d_vocab=6, seed=0, bos_token=0, exclude=(3, 4))
    assert set(tokens[:, 1:].unique().tolist()) == {1, 2, 5}


def test_same_seed_gives_the_same_tokens_and_a_generator_keeps_drawing() -> None:
    assert torch.equal(repeated_random_tokens(2, 8, 50, seed=5), repeated_random_tokens(2, 8, 50, seed=5))
    generator = torch.Generator().manual_seed(5)
    assert not torch.equal(repeated_random_tokens(2, 8, 50, generator), repeated_random_tokens(2, 8, 50, generator))


def test_repeated_span_is_copied_at_its_repeat_position() -> None:
    batch = repeated_span_tokens(n_batch=32, seq_len=40, d_vocab=100, seed=0, bos_token=0)
    assert batch.tokens.shape == (32, 41)
    for row in range(32):
        start, repeat, length = (int(batch.span_start[row]), int(batch.repeat_start[row]), int(batch.span_length[row]))
        assert start >= 1 and start + length <= repeat and repeat + length <= 41
        assert torch.equal(batch.tokens[row, start : start + length], batch.tokens[row, repeat : repeat + length])


def test_induction_mask_marks_the_repeat_after_its_first_token() -> None:
    batch = repeated_span_tokens(n_batch=16, seq_len=30, d_vocab=100, seed=1)
    for row in range(16):
        repeat, length = int(batch.repeat_start[row]), int(batch.span_length[row])
        expected = torch.zeros(30, dtype=torch.bool)
        expected[repeat + 1 : repeat + length] = True
        assert torch.equal(batch.induction_mask[row], expected)


def test_span_lengths_and_offsets_vary_across_the_batch() -> None:
    batch = repeated_span_tokens(n_batch=64, seq_len=64, d_vocab=100, seed=0, min_span=4, max_span=20)
    assert batch.span_length.min() >= 4 and batch.span_length.max() <= 20
    assert len(batch.span_length.unique()) > 5
    assert len((batch.repeat_start - batch.span_start).unique()) > 5


def test_span_that_cannot_fit_twice_is_rejected() -> None:
    with pytest.raises(ConfigError, match="max_span"):
        repeated_span_tokens(n_batch=1, seq_len=10, d_vocab=100, seed=0, max_span=6)
