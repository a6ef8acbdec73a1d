"""LayerNorm with its scale exposed, so attributions can treat it as a fixed linear map."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from circuitlab.hooks import HookPoint
from circuitlab.model.config import TransformerConfig


class LayerNorm(nn.Module):
    """``(x - mean(x)) / scale * w + b`` with ``scale = sqrt(var(x) + eps)``.

    Hooks: ``hook_scale [batch pos 1]`` and ``hook_normalized [batch pos d_model]`` (after ``w``, ``b``).
    With ``affine=False`` (``LNPre``, after the weights were folded into the next layer) there is no
    ``w`` or ``b``.
    """

    def __init__(self, cfg: TransformerConfig, affine: bool = True) -> None:
        super().__init__()
        self.eps = cfg.eps
        if affine:
            self.w = nn.Parameter(torch.ones(cfg.d_model))
            self.b = nn.Parameter(torch.zeros(cfg.d_model))
        else:
            self.w = None
            self.b = None
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        variance, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)  # (B, P, 1) each
        centred = x - mean
        scale = self.hook_scale((variance + self.eps).sqrt())  # (B, P, 1)
        normalized = centred / scale
        if self.w is not None:
            normalized = torch.addcmul(self.b, normalized, self.w)
        return self.hook_normalized(normalized)

    def extra_repr(self) -> str:
        return f"affine={self.w is not None}, eps={self.eps}"
