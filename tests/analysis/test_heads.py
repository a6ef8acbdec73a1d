"""Head detectors score a head 1.0 when it attends exactly where the pattern says, and near chance otherwise."""

from __future__ import annotations

import pytest
import torch

from circuitlab import HookedTransformer, TransformerConfig
from circuitlab.analysis import induction_scores, previous_token_scores


@pytest.fixture
def model() -> HookedTransformer:
    cfg = TransformerConfig(n_layers=2, d_model=32, n_ctx=110, d_vocab=60, n_heads=4, attn_only=True, seed=0)
    return HookedTransformer(cfg)


def force_attention(model: HookedTransformer, layer: int, head: int, key_for_query) -> None:
    """Make one head attend from each query position q to key_for_query(q) (permanent hook)."""

    def replace(pattern, hook):
        n = pattern.shape[-1]
        forced = torch.zeros(n, n)
        for query in range(n):
            forced[query, key_for_query(query, n)] = 1.0
        pattern = pattern.clone()
        pattern[:, head] = forced
        return pattern

    model.add_hook(f"blocks.{layer}.attn.hook_pattern", replace, is_permanent=True)


def test_a_previous_token_head_scores_one(model) -> None:
    force_attention(model, layer=0, head=2, key_for_query=lambda q, n: max(q - 1, 0))
    tokens = torch.randint(1, 60, (4, 20), generator=torch.Generator().manual_seed(0))
    result = previous_token_scores(model, tokens)
    assert result.scores.shape == (2, 4)
    assert result.scores[0, 2] == pytest.approx(1.0)
    assert result.scores[1].max() < 0.5
    assert result.top(1)[0][0] == "L0H2"


def test_an_induction_head_scores_one_at_every_repeat_length() -> None:
    # A large vocabulary, so the random halves almost never repeat a token by chance.
    cfg = TransformerConfig(n_layers=2, d_model=32, n_ctx=110, d_vocab=5000, n_heads=4, attn_only=True, seed=0)
    model = HookedTransformer(cfg)

    # The pattern depends on the repeat length, so decide from the tokens themselves: attend to the
    # position after the previous occurrence of the current token, as an induction head does.
    def induction(pattern, hook):
        tokens = hook.ctx["tokens"]
        pattern = pattern.clone()
        for b in range(tokens.shape[0]):
            for q in range(tokens.shape[1]):
                earlier = (tokens[b, :q] == tokens[b, q]).nonzero()
                if len(earlier):
                    pattern[b, 1, q] = 0.0
                    pattern[b, 1, q, int(earlier[-1]) + 1] = 1.0
        return pattern

    original_forward = model.forward

    def forward_remembering_tokens(tokens, *args, **kwargs):
        model.hook_dict["blocks.1.attn.hook_pattern"].ctx["tokens"] = tokens
        return original_forward(tokens, *args, **kwargs)

    model.forward = forward_remembering_tokens
    model.add_hook("blocks.1.attn.hook_pattern", induction, is_permanent=True)
    result = induction_scores(model, repeat_lengths=(10, 17, 30), bos_token=0)
    assert result.scores[1, 1] > 0.97
    assert result.scores[0].max() < 0.2


def test_a_fixed_offset_head_does_not_pass_as_an_induction_head(model) -> None:
    # Attending 39 back matches the induction offset for repeat length 40 only.
    force_attention(model, layer=1, head=0, key_for_query=lambda q, n: max(q - 39, 0))
    result = induction_scores(model, bos_token=0)
    assert result.scores[1, 0] == pytest.approx(1 / 3, abs=0.05)


def test_a_repeat_too_long_for_the_context_is_an_error(model) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        induction_scores(model, repeat_lengths=(55,))
