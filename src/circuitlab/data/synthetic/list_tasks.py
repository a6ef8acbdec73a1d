"""Algorithmic list tasks: read a list, a separator, then write the list reversed or sorted.

Layout of a row: ``[BOS] x_1 .. x_n SEP y_1 .. y_n`` with values ``x_i`` in ``[0, n_values)``. The
answer ``y`` sits at ``target_positions``; each answer token is predicted from the logits one position
before it (``prediction_positions``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from circuitlab.data.synthetic.seeding import Seed, torch_generator
from circuitlab.errors import ConfigError


@dataclass(frozen=True)
class ListTaskBatch:
    """A batch of a list task and where its answers are."""

    tokens: Int[Tensor, "batch pos"]
    target_positions: Int[Tensor, " list_len"]
    separator_token: int
    d_vocab: int

    @property
    def targets(self) -> Int[Tensor, "batch list_len"]:
        return self.tokens[:, self.target_positions]

    @property
    def prediction_positions(self) -> Int[Tensor, " list_len"]:
        """Where the logits that predict each answer token are: one position before it."""
        return self.target_positions - 1


def _special_tokens(n_values: int, separator_token: int | None, bos_token: int | None) -> tuple[int, int]:
    separator = n_values if separator_token is None else separator_token
    specials = [separator] if bos_token is None else [separator, bos_token]
    if any(0 <= token < n_values for token in specials) or len(set(specials)) != len(specials):
        raise ConfigError(
            f"the separator ({separator}) and BOS ({bos_token}) must differ from each other and from the "
            f"list values [0, {n_values})"
        )
    return separator, max(n_values - 1, *specials) + 1


def _draw_lists(n_batch: int, list_len: int, n_values: int, seed: Seed, distinct: bool) -> Int[Tensor, "batch n"]:
    if n_batch < 1 or list_len < 1 or n_values < 1:
        raise ConfigError(f"n_batch, list_len and n_values must be positive, got {n_batch}, {list_len}, {n_values}")
    generator = torch_generator(seed)
    if not distinct:
        return torch.randint(n_values, (n_batch, list_len), generator=generator)
    if list_len > n_values:
        raise ConfigError(f"cannot draw {list_len} distinct values from {n_values}")
    return torch.rand(n_batch, n_values, generator=generator).argsort(dim=1)[:, :list_len]


def _assemble(
    values: Int[Tensor, "batch n"], answers: Int[Tensor, "batch n"], separator: int, bos_token: int | None, d_vocab: int
) -> ListTaskBatch:
    n_batch, list_len = values.shape
    separator_column = torch.full((n_batch, 1), separator, dtype=values.dtype)
    pieces = [values, separator_column, answers]
    if bos_token is not None:
        pieces.insert(0, torch.full((n_batch, 1), bos_token, dtype=values.dtype))
    tokens = torch.cat(pieces, dim=1)
    first_answer = tokens.shape[1] - list_len
    return ListTaskBatch(tokens, torch.arange(first_answer, tokens.shape[1]), separator, d_vocab)


def list_reversal_batch(
    n_batch: int,
    list_len: int,
    n_values: int,
    seed: Seed,
    separator_token: int | None = None,
    bos_token: int | None = None,
) -> ListTaskBatch:
    """Random lists followed by the separator and the list reversed; ``[batch, 2 * list_len + 1 (+1 BOS)]``.

    The separator defaults to ``n_values``; ``d_vocab`` is one more than the largest id used.
    """
    separator, d_vocab = _special_tokens(n_values, separator_token, bos_token)
    values = _draw_lists(n_batch, list_len, n_values, seed, distinct=False)
    return _assemble(values, values.flip(dims=[1]), separator, bos_token, d_vocab)


def list_sorting_batch(
    n_batch: int,
    list_len: int,
    n_values: int,
    seed: Seed,
    separator_token: int | None = None,
    bos_token: int | None = None,
    distinct: bool = False,
) -> ListTaskBatch:
    """Random lists followed by the separator and the list sorted ascending; same layout as reversal.

    ``distinct=True`` draws each list without repeated values (needs ``list_len <= n_values``).
    """
    separator, d_vocab = _special_tokens(n_values, separator_token, bos_token)
    values = _draw_lists(n_batch, list_len, n_values, seed, distinct)
    return _assemble(values, values.sort(dim=1).values, separator, bos_token, d_vocab)
