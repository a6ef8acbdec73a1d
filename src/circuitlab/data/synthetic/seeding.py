"""One way to turn the ``seed`` argument of the task generators into a ``torch.Generator``."""

from __future__ import annotations

import torch

from circuitlab.errors import ConfigError

Seed = int | torch.Generator


def torch_generator(seed: Seed) -> torch.Generator:
    """``seed`` itself if it is a generator (the caller keeps drawing from it), else a fresh seeded one."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def allowed_token_ids(d_vocab: int, exclude: tuple[int, ...] | list[int] = ()) -> torch.Tensor:
    """The ids in ``[0, d_vocab)`` minus ``exclude``, ``[n_allowed]``."""
    if d_vocab < 1:
        raise ConfigError(f"d_vocab must be positive, got {d_vocab}")
    keep = torch.ones(d_vocab, dtype=torch.bool)
    excluded = [token for token in exclude if 0 <= token < d_vocab]
    keep[excluded] = False
    allowed = keep.nonzero().flatten()
    if allowed.numel() == 0:
        raise ConfigError(f"excluding {sorted(set(exclude))} leaves no token of the {d_vocab} to sample")
    return allowed
