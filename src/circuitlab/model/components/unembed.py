"""Unembedding: residual stream to logits."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from circuitlab.model.components.affine import affine
from circuitlab.model.config import TransformerConfig


class Unembed(nn.Module):
    """``logits = x @ W_U + b_U`` with ``W_U [d_model, d_vocab_out]``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out))

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab_out"]:
        return affine(x, self.W_U, self.b_U)
