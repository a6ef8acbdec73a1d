"""HookedTransformer's forward pass: shapes, loss, causality, early stopping and input errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from circuitlab import HookedTransformer, InputError, TransformerConfig


def make_model(**overrides) -> HookedTransformer:
    values = dict(n_layers=2, d_model=32, n_ctx=16, d_vocab=50, n_heads=4, seed=0)
    values.update(overrides)
    return HookedTransformer(TransformerConfig(**values)).eval()


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return make_model()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(0))


def test_logits_shape(model, tokens) -> None:
    assert model(tokens).shape == (3, 10, 50)
    assert model(tokens[0]).shape == (1, 10, 50)


def test_loss_is_next_token_cross_entropy(model, tokens) -> None:
    logits, loss = model(tokens, return_type="both")
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 50), tokens[:, 1:].reshape(-1))
    torch.testing.assert_close(loss, expected)
    per_token = model(tokens, return_type="loss", loss_per_token=True)
    assert per_token.shape == (3, 9)
    torch.testing.assert_close(per_token.mean(), expected)


def test_return_type_none_returns_nothing(model, tokens) -> None:
    assert model(tokens, return_type=None) is None


def test_unknown_return_type_is_an_error(model, tokens) -> None:
    with pytest.raises(InputError, match="return_type"):
        model(tokens, return_type="probs")


def test_attention_is_causal(model, tokens) -> None:
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 50
    torch.testing.assert_close(model(tokens)[:, :6], model(changed)[:, :6])
    assert not torch.allclose(model(tokens)[:, 6:], model(changed)[:, 6:])


def test_attention_patterns_are_causal_distributions(model, tokens) -> None:
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    pattern = cache["blocks.0.attn.hook_pattern"]
    torch.testing.assert_close(pattern.sum(-1), torch.ones(3, 4, 10))
    assert torch.all(pattern.triu(diagonal=1) == 0)


def test_stop_at_layer_returns_the_residual_stream_entering_that_layer(model, tokens) -> None:
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(model(tokens, stop_at_layer=1), cache["blocks.1.hook_resid_pre"])
    torch.testing.assert_close(model(tokens, stop_at_layer=0), cache["blocks.0.hook_resid_pre"])


def test_residual_stream_adds_up(model, tokens) -> None:
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], cache["hook_embed"] + cache["hook_pos_embed"])
    for layer in range(2):
        pre, mid, post = (cache[f"blocks.{layer}.hook_resid_{p}"] for p in ("pre", "mid", "post"))
        torch.testing.assert_close(mid, pre + cache[f"blocks.{layer}.hook_attn_out"])
        torch.testing.assert_close(post, mid + cache[f"blocks.{layer}.hook_mlp_out"])


def test_per_head_results_sum_to_the_attention_output(tokens) -> None:
    model = make_model(use_attn_result=True)
    logits, cache = model.run_with_cache(tokens)
    result = cache["blocks.1.attn.hook_result"]
    assert result.shape == (3, 10, 4, 32)
    torch.testing.assert_close(result.sum(2) + model.blocks[1].attn.b_O, cache["blocks.1.hook_attn_out"])
    torch.testing.assert_close(logits, make_model()(tokens), atol=1e-5, rtol=1e-5)


def test_per_head_weights_compose_into_circuits(model) -> None:
    attn = model.blocks[0].attn
    assert attn.W_Q.shape == attn.W_K.shape == attn.W_V.shape == (4, 32, 8)
    assert attn.W_O.shape == (4, 8, 32)
    assert (attn.W_V @ attn.W_O).shape == (4, 32, 32)  # one OV circuit per head
    assert model.W_Q.shape == (2, 4, 32, 8) and model.W_in.shape == (2, 32, 128)


def test_head_weights_are_read_without_copying(model) -> None:
    from circuitlab.model.components.affine import heads_as_matrix

    W_Q = model.blocks[0].attn.W_Q
    assert heads_as_matrix(W_Q).data_ptr() == W_Q.data_ptr()
    assert heads_as_matrix(W_Q).is_contiguous()


def test_attention_only_model_runs(tokens) -> None:
    model = make_model(attn_only=True)
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(
        cache["blocks.0.hook_resid_post"], cache["blocks.0.hook_resid_pre"] + cache["blocks.0.hook_attn_out"]
    )


@pytest.mark.parametrize("act_fn", ["gelu_new", "gelu", "gelu_fast", "relu", "silu"])
def test_every_activation_function_runs(act_fn, tokens) -> None:
    assert torch.isfinite(make_model(act_fn=act_fn)(tokens)).all()


def test_input_longer_than_the_context_names_both_lengths(model) -> None:
    with pytest.raises(InputError, match=r"17 tokens long .* \(n_ctx\) is 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_token_ids_outside_the_vocabulary_are_named(model) -> None:
    with pytest.raises(InputError, match=r"\[50, 77\] are outside the vocabulary \[0, 50\)"):
        model(torch.tensor([[1, 50, 2, 77]]))
    with pytest.raises(InputError, match=r"\[-1\]"):
        model(torch.tensor([[1, -1]]))


def test_float_input_is_rejected(model) -> None:
    with pytest.raises(InputError, match="integer tensor"):
        model(torch.zeros(1, 4))


def test_text_without_a_tokenizer_is_an_error(model) -> None:
    with pytest.raises(InputError, match="no tokenizer"):
        model("hello")


def test_loss_needs_two_tokens(model) -> None:
    with pytest.raises(InputError, match="at least two tokens"):
        model(torch.tensor([[3]]), return_type="loss")


def test_same_seed_same_weights() -> None:
    assert torch.equal(make_model(seed=5).W_E, make_model(seed=5).W_E)
    assert not torch.equal(make_model(seed=5).W_E, make_model(seed=6).W_E)


def test_an_attention_mask_of_the_wrong_shape_names_both_shapes(model, tokens) -> None:
    with pytest.raises(InputError, match=r"attention_mask has shape \(3, 9\) but the tokens need \(3, 10\)"):
        model(tokens, attention_mask=torch.ones(3, 9, dtype=torch.long))
    with pytest.raises(InputError, match=r"\(2, 10\) but the tokens need \(3, 10\)"):
        model(tokens, attention_mask=torch.ones(2, 10, dtype=torch.long))


def test_a_one_dimensional_mask_goes_with_one_dimensional_tokens(model, tokens) -> None:
    mask = torch.ones(10, dtype=torch.long)
    torch.testing.assert_close(model(tokens[0], attention_mask=mask), model(tokens[:1]))


def test_past_kv_cache_must_have_one_entry_per_layer(model, tokens) -> None:
    from circuitlab.model.components import LayerKVCache

    with pytest.raises(InputError, match="2 layers"):
        model(tokens, past_kv_cache=[])
    with pytest.raises(InputError, match="stop_at_layer"):
        model(tokens, past_kv_cache=LayerKVCache.empty_for(model, 3), stop_at_layer=1)


def test_an_empty_kv_cache_is_filled_and_continues_the_sequence(model, tokens) -> None:
    from circuitlab.model.components import LayerKVCache

    cache = LayerKVCache.empty_for(model, 3)
    model(tokens[:, :6], past_kv_cache=cache)
    assert all(entry.length == 6 for entry in cache)
    continued = model(tokens[:, 6:], past_kv_cache=cache)
    torch.testing.assert_close(continued, model(tokens)[:, 6:], atol=1e-5, rtol=1e-5)


def test_per_token_loss_is_zero_at_padding(model, tokens) -> None:
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, 7:] = 0
    losses = model(tokens, return_type="loss", loss_per_token=True, attention_mask=mask)
    assert torch.all(losses[0, 6:] == 0) and torch.all(losses[1] > 0)


def test_models_built_from_one_config_do_not_share_it(tokens) -> None:
    from circuitlab.model.weight_processing import process_weights

    cfg = TransformerConfig(n_layers=1, d_model=16, n_ctx=16, d_vocab=50, n_heads=2, seed=0)
    first, second = HookedTransformer(cfg), HookedTransformer(cfg)
    process_weights(first)
    assert second.cfg.normalization_type == "LN" and "processing" not in second.cfg.extra
    assert cfg.normalization_type == "LN"


def test_settings_changed_on_model_cfg_apply_to_every_component(tokens) -> None:
    model = make_model()
    model.cfg.use_attn_result = True
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_result")
    assert cache["blocks.0.attn.hook_result"].shape == (3, 10, 4, 32)


def test_start_at_layer_finishes_the_forward_from_a_residual_stream(model, tokens) -> None:
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(model(cache["blocks.1.hook_resid_pre"], start_at_layer=1), logits)
    torch.testing.assert_close(model(cache["blocks.0.hook_resid_pre"], start_at_layer=0), logits)
    resid = model(cache["blocks.0.hook_resid_pre"], start_at_layer=0, stop_at_layer=1)
    torch.testing.assert_close(resid, cache["blocks.1.hook_resid_pre"])


def test_start_at_layer_rejects_tokens_and_losses(model, tokens) -> None:
    with pytest.raises(InputError, match="residual stream"):
        model(tokens, start_at_layer=1)
    with pytest.raises(InputError, match="loss"):
        model(torch.zeros(1, 4, 32), start_at_layer=1, return_type="loss")
    with pytest.raises(InputError, match="0 <= start <= stop"):
        model(torch.zeros(1, 4, 32), start_at_layer=3)
