"""The MLP sublayer: up-projection, elementwise non-linearity, down-projection."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from circuitlab.errors import ConfigError
from circuitlab.hooks import HookPoint
from circuitlab.model.components.affine import affine
from circuitlab.model.config import TransformerConfig


def _gelu_fast(x: Tensor) -> Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * math.sqrt(2.0 / math.pi) * (1.0 + 0.044715 * x * x)))


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's tanh approximation
    "gelu_fast": _gelu_fast,
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
}


class MLP(nn.Module):
    """``W_out(act(x @ W_in + b_in)) + b_out`` with ``W_in [d_model, d_mlp]``, ``W_out [d_mlp, d_model]``.

    Hooks: ``hook_pre`` (before the non-linearity) and ``hook_post`` (after), both ``[batch pos d_mlp]``.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        if cfg.d_mlp is None:
            raise ConfigError("an MLP needs d_mlp, but this config is attention-only (attn_only=True)")
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act_fn = ACTIVATIONS[cfg.act_fn]
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(affine(x, self.W_in, self.b_in))  # (B, P, M)
        post = self.hook_post(self.act_fn(pre))  # (B, P, M)
        return affine(post, self.W_out, self.b_out)
