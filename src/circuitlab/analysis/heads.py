"""Head detectors: how strongly each attention head follows a known pattern.

A score is the mean attention weight a head puts on the expected key position, over the query
positions where that pattern is defined: 1.0 means it attends there and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitlab.data.synthetic import repeated_random_tokens
from circuitlab.model import HookedTransformer


@dataclass
class HeadScores:
    """``scores[layer, head]`` with labels ``"L{layer}H{head}"`` for plotting and reports."""

    scores: Float[Tensor, "layer head"]
    name: str

    @property
    def labels(self) -> list[list[str]]:
        n_layers, n_heads = self.scores.shape
        return [[f"L{layer}H{head}" for head in range(n_heads)] for layer in range(n_layers)]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` highest-scoring heads as ``("L1H4", score)``, best first."""
        flat = self.scores.flatten()
        n_heads = self.scores.shape[1]
        best = flat.topk(min(k, flat.numel())).indices.tolist()
        return [(f"L{i // n_heads}H{i % n_heads}", float(flat[i])) for i in best]


def _patterns(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "layer batch head q k"]:
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    with torch.inference_mode():
        _, cache = model.run_with_cache(tokens, names_filter=names, return_type=None)
    return torch.stack([cache[name] for name in names])


def offset_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], offset: int, first_query: int | None = None
) -> Float[Tensor, "layer head"]:
    """Mean attention from each query position ``q >= first_query`` to key ``q - offset``."""
    patterns = _patterns(model, tokens)  # (L, B, H, Q, K)
    first_query = offset if first_query is None else first_query
    diagonal = patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)  # (L, B, H, Q - offset): query q = offset + i
    return diagonal[..., first_query - offset :].mean(dim=(1, 3))


def previous_token_scores(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> HeadScores:
    """How much each head attends from every token to the one just before it (BOS excluded as a query)."""
    return HeadScores(offset_scores(model, tokens, offset=1, first_query=2), "previous-token score")


def induction_scores(
    model: HookedTransformer,
    repeat_lengths: tuple[int, ...] = (30, 40, 50),
    n_batch: int = 8,
    seed: int = 0,
    bos_token: int | None = 0,
) -> HeadScores:
    """Induction score on ``[BOS] x_1..x_n x_1..x_n``, averaged over several repeat lengths ``n``.

    At the second copy of token ``x_i`` an induction head attends to the token after its first
    copy, ``n - 1`` positions back. Several lengths are used because a fixed length can be met by a
    head that simply attends a fixed distance back (a positional shortcut, not induction). They sit
    near the literature's usual 50: on short repeats attention sinks (BOS) take a larger share of an
    induction head's attention (measured on attn-only-2l's L1H2: 0.37 at n=12, 0.45 at 25, 0.49 at 50).
    """
    scores = []
    for index, length in enumerate(repeat_lengths):
        if 2 * length + 1 > model.cfg.n_ctx:
            raise ValueError(f"repeat length {length} does not fit twice in n_ctx={model.cfg.n_ctx}")
        tokens = repeated_random_tokens(n_batch, length, model.cfg.d_vocab, seed + index, bos_token=bos_token)
        first_second_copy = length + (1 if bos_token is not None else 0)
        scores.append(offset_scores(model, tokens, offset=length - 1, first_query=first_second_copy))
    return HeadScores(torch.stack(scores).mean(0), "induction score")
