"""Dropping the batch axis of an activation from a run on a single input (``remove_batch_dim``)."""

from __future__ import annotations

from torch import Tensor

from circuitlab.errors import InputError


def without_batch_axis(name: str, activation: Tensor) -> Tensor:
    """``[1, ...] -> [...]``; any other batch size is an ``InputError`` naming the activation ``name``."""
    if activation.dim() == 0 or activation.shape[0] != 1:
        batch = activation.shape[0] if activation.dim() else "none (a scalar)"
        raise InputError(
            f"remove_batch_dim needs a batch of one, but '{name}' has batch size {batch}; "
            "run on a single input, or index the activations you need instead"
        )
    return activation[0]
