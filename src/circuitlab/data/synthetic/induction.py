"""Sequences where an earlier stretch of random tokens comes back, so induction can predict the rest.

Two generators:

- ``repeated_random_tokens``: the standard test, ``[BOS] x_1..x_n x_1..x_n``. Fine for *measuring*
  induction, but training on it teaches a positional shortcut ("attend n-1 back") that scores like an
  induction head without being one;
- ``repeated_span_tokens``: a random span of random length repeats at a random later offset, and
  the positions where induction helps are returned, so training and scoring work for any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from circuitlab.data.synthetic.seeding import Seed, allowed_token_ids, torch_generator
from circuitlab.errors import ConfigError


def random_tokens(
    n_batch: int, length: int, d_vocab: int, seed: Seed, exclude: tuple[int, ...] | list[int] = ()
) -> Int[Tensor, "batch pos"]:
    """Uniform random ids from ``[0, d_vocab)`` minus ``exclude``."""
    allowed = allowed_token_ids(d_vocab, exclude)
    picks = torch.randint(allowed.numel(), (n_batch, length), generator=torch_generator(seed))
    return allowed[picks]


def _with_bos(tokens: Int[Tensor, "batch pos"], bos_token: int | None) -> Int[Tensor, "batch pos"]:
    if bos_token is None:
        return tokens
    bos = torch.full((tokens.shape[0], 1), bos_token, dtype=tokens.dtype)
    return torch.cat([bos, tokens], dim=1)


def repeated_random_tokens(
    n_batch: int,
    seq_len: int,
    d_vocab: int,
    seed: Seed,
    bos_token: int | None = None,
    exclude: tuple[int, ...] | list[int] = (),
) -> Int[Tensor, "batch pos"]:
    """``seq_len`` random tokens then the same ``seq_len`` again: ``[batch, 1 + 2 * seq_len]`` with a BOS
    column first, or ``[batch, 2 * seq_len]`` when ``bos_token`` is None.

    The random tokens never include ``bos_token`` or anything in ``exclude``.
    """
    if n_batch < 1 or seq_len < 1:
        raise ConfigError(f"n_batch and seq_len must be positive, got {n_batch} and {seq_len}")
    excluded = (*exclude, bos_token) if bos_token is not None else tuple(exclude)
    first_half = random_tokens(n_batch, seq_len, d_vocab, seed, excluded)
    return _with_bos(torch.cat([first_half, first_half], dim=1), bos_token)


@dataclass(frozen=True)
class RepeatedSpanBatch:
    """Random sequences in which one span repeats later; all positions index ``tokens`` (BOS included).

    ``induction_mask[b, t]`` is True where token ``t`` can be predicted by induction from position
    ``t - 1`` (the second to last token of the repeat): compare it with ``logits[b, t - 1]``.
    """

    tokens: Int[Tensor, "batch pos"]
    span_start: Int[Tensor, " batch"]
    repeat_start: Int[Tensor, " batch"]
    span_length: Int[Tensor, " batch"]
    induction_mask: Bool[Tensor, "batch pos"]


def repeated_span_tokens(
    n_batch: int,
    seq_len: int,
    d_vocab: int,
    seed: Seed,
    min_span: int = 4,
    max_span: int | None = None,
    bos_token: int | None = None,
    exclude: tuple[int, ...] | list[int] = (),
) -> RepeatedSpanBatch:
    """``seq_len`` random tokens per row (plus a BOS column first if given), where a span of length
    ``L ~ U[min_span, max_span]`` starting at a random position repeats at a random later position.

    The copy never overlaps the original. ``max_span`` defaults to ``seq_len // 2``, the most that fits.
    """
    max_span = seq_len // 2 if max_span is None else max_span
    if not 2 <= min_span <= max_span <= seq_len // 2:
        raise ConfigError(
            f"need 2 <= min_span <= max_span <= seq_len // 2 so that a span and its copy fit; got "
            f"min_span={min_span}, max_span={max_span}, seq_len={seq_len}"
        )
    generator = torch_generator(seed)
    excluded = (*exclude, bos_token) if bos_token is not None else tuple(exclude)
    tokens = random_tokens(n_batch, seq_len, d_vocab, generator, excluded)
    offset = 0 if bos_token is None else 1
    starts, repeats, lengths = [], [], []
    mask = torch.zeros(n_batch, seq_len + offset, dtype=torch.bool)
    for row in range(n_batch):
        length = int(torch.randint(min_span, max_span + 1, (), generator=generator))
        start = int(torch.randint(0, seq_len - 2 * length + 1, (), generator=generator))
        repeat = int(torch.randint(start + length, seq_len - length + 1, (), generator=generator))
        tokens[row, repeat : repeat + length] = tokens[row, start : start + length]
        mask[row, offset + repeat + 1 : offset + repeat + length] = True
        starts.append(offset + start)
        repeats.append(offset + repeat)
        lengths.append(length)
    return RepeatedSpanBatch(
        tokens=_with_bos(tokens, bos_token),
        span_start=torch.tensor(starts),
        repeat_start=torch.tensor(repeats),
        span_length=torch.tensor(lengths),
        induction_mask=mask,
    )
