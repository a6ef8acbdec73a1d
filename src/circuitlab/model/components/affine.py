"""Shared tensor helpers for the components: one place for the matrix products every layer needs."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn


def affine(
    x: Float[Tensor, "... d_in"], W: Float[Tensor, "d_in d_out"], b: Float[Tensor, " d_out"] | None
) -> Float[Tensor, "... d_out"]:
    """``x @ W + b`` as one fused BLAS call (``addmm``) over all leading axes."""
    flat = x.reshape(-1, x.shape[-1])
    out = torch.mm(flat, W) if b is None else torch.addmm(b, flat, W)
    return out.view(*x.shape[:-1], W.shape[-1])


def per_head_input_weight(n_heads: int, d_model: int, d_head: int) -> nn.Parameter:
    """A ``[n_heads, d_model, d_head]`` parameter laid out in memory as ``[d_model, n_heads, d_head]``.

    Users index it per head (``W_Q[h]`` is head h's query map, ``W_V @ W_O`` is the OV circuit), while
    the forward pass reads it as one ``[d_model, n_heads * d_head]`` matrix without copying it.
    """
    storage = torch.empty(d_model, n_heads, d_head)
    return nn.Parameter(storage.permute(1, 0, 2))


def heads_as_matrix(W: Float[Tensor, "head d_model d_head"]) -> Float[Tensor, "d_model head_x_d_head"]:
    """View per-head input weights as one matrix (a copy only if the layout was changed)."""
    n_heads, d_model, d_head = W.shape
    return W.permute(1, 0, 2).reshape(d_model, n_heads * d_head)
