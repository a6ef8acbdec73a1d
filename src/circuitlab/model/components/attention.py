"""Multi-head causal self-attention with per-head weights and a hook on every intermediate."""

from __future__ import annotations

import math
from dataclasses import dataclass

import einops
import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from circuitlab.hooks import HookPoint
from circuitlab.model.components.affine import heads_as_matrix, per_head_input_weight
from circuitlab.model.config import TransformerConfig


@dataclass
class LayerKVCache:
    """Keys and values of the positions already processed, for incremental decoding."""

    keys: Float[Tensor, "batch past_pos head d_head"]
    values: Float[Tensor, "batch past_pos head d_head"]

    @property
    def length(self) -> int:
        return self.keys.shape[1]

    @classmethod
    def empty_for(cls, model: nn.Module, batch_size: int) -> list[LayerKVCache]:
        """One empty cache per layer of ``model`` (a ``HookedTransformer``), to pass as ``past_kv_cache``."""
        cfg = model.cfg
        weight = model.embed.W_E
        empty = torch.empty(batch_size, 0, cfg.n_heads, int(cfg.d_head), device=weight.device, dtype=weight.dtype)
        return [cls(empty, empty) for _ in range(cfg.n_layers)]


class Attention(nn.Module):
    """Causal multi-head attention.

    Weights per head: ``W_Q, W_K, W_V [n_heads, d_model, d_head]``, ``W_O [n_heads, d_head, d_model]``,
    biases ``b_Q, b_K, b_V [n_heads, d_head]``, ``b_O [d_model]``.
    Hooks: ``hook_q hook_k hook_v [batch pos head d_head]``, ``hook_attn_scores hook_pattern
    [batch head query_pos key_pos]``, ``hook_z [batch pos head d_head]``, and ``hook_result
    [batch pos head d_model]`` when ``cfg.use_attn_result``.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_heads, d_model, d_head = cfg.n_heads, cfg.d_model, cfg.d_head
        self.W_Q = per_head_input_weight(n_heads, d_model, d_head)
        self.W_K = per_head_input_weight(n_heads, d_model, d_head)
        self.W_V = per_head_input_weight(n_heads, d_model, d_head)
        self.W_O = nn.Parameter(torch.empty(n_heads, d_head, d_model))
        self.b_Q = nn.Parameter(torch.zeros(n_heads, d_head))
        self.b_K = nn.Parameter(torch.zeros(n_heads, d_head))
        self.b_V = nn.Parameter(torch.zeros(n_heads, d_head))
        self.b_O = nn.Parameter(torch.zeros(d_model))
        self.attn_scale = math.sqrt(d_head) if cfg.use_attn_scale else 1.0

        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()
        self.hook_result = HookPoint(enabled_by="model.cfg.use_attn_result = True")

    def forward(
        self,
        x: Float[Tensor, "batch pos d_model"],
        key_padding_mask: Bool[Tensor, "batch key_pos"] | None = None,
        kv_cache: LayerKVCache | None = None,
    ) -> tuple[Float[Tensor, "batch pos d_model"], LayerKVCache | None]:
        """Attend from every position in ``x`` to itself and earlier positions (cached ones included).

        ``key_padding_mask`` is True at real tokens, over past and present positions. Returns the
        attention output and, when ``kv_cache`` was given, the cache extended by ``x``'s positions.
        """
        q = self.hook_q(self._project(x, self.W_Q, self.b_Q))  # (B, P, H, E)
        k = self.hook_k(self._project(x, self.W_K, self.b_K))  # (B, P, H, E)
        v = self.hook_v(self._project(x, self.W_V, self.b_V))  # (B, P, H, E)
        if kv_cache is not None:
            k = torch.cat([kv_cache.keys, k], dim=1)  # (B, K, H, E), K = past + P
            v = torch.cat([kv_cache.values, v], dim=1)
            kv_cache = LayerKVCache(k, v)
        n_queries, n_keys = q.shape[1], k.shape[1]

        scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)) / self.attn_scale  # (B, H, P, K)
        allowed = torch.ones(n_queries, n_keys, dtype=torch.bool, device=x.device).tril(n_keys - n_queries)
        if key_padding_mask is not None:
            allowed = allowed & key_padding_mask[:, None, None, :]  # (B, 1, P, K)
        scores = self.hook_attn_scores(scores.masked_fill(~allowed, float("-inf")))
        pattern = torch.softmax(scores, dim=-1)
        if key_padding_mask is not None:
            # A padding query may see no real key at all: its row is all -inf and softmax gives NaN.
            pattern = torch.nan_to_num(pattern, nan=0.0)
        pattern = self.hook_pattern(pattern)  # (B, H, P, K)

        z = self.hook_z(torch.matmul(pattern, v.transpose(1, 2)).transpose(1, 2))  # (B, P, H, E)
        if self.cfg.use_attn_result:
            result = self.hook_result(
                einops.einsum(z, self.W_O, "batch pos head d_head, head d_head d_model -> batch pos head d_model")
            )
            out = result.sum(dim=2) + self.b_O
        else:
            z_flat = einops.rearrange(z, "batch pos head d_head -> (batch pos) (head d_head)")
            W_O_flat = einops.rearrange(self.W_O, "head d_head d_model -> (head d_head) d_model")
            out = torch.addmm(self.b_O, z_flat, W_O_flat).view(*x.shape[:2], -1)
        return out, kv_cache

    @staticmethod
    def _project(
        x: Float[Tensor, "batch pos d_model"],
        W: Float[Tensor, "head d_model d_head"],
        b: Float[Tensor, "head d_head"],
    ) -> Float[Tensor, "batch pos head d_head"]:
        """``einsum(x, W, "batch pos d_model, head d_model d_head -> batch pos head d_head") + b`` as one GEMM."""
        flat = torch.addmm(b.reshape(-1), x.reshape(-1, x.shape[-1]), heads_as_matrix(W))
        return flat.view(*x.shape[:2], *b.shape)
