"""ActivationCache: dict-like access by full or shorthand names, and residual-stream decompositions that sum back."""

from __future__ import annotations

import re

import pytest
import torch

from circuitlab import ConfigError, HookedTransformer, InputError
from circuitlab.model.activation_cache import ActivationCache, slice_along
from circuitlab.model.weight_processing import process_weights

ATOL = 1e-5
ARCHITECTURES = [
    pytest.param({}, id="mlp"),
    pytest.param({"attn_only": True}, id="attn_only"),
    pytest.param({"use_attn_result": True}, id="attn_result"),
    pytest.param({"positional_embedding_type": "none"}, id="no_pos_embed"),
]


def run(model: HookedTransformer, tokens: torch.Tensor, **kwargs) -> tuple[torch.Tensor, ActivationCache]:
    return model.run_with_cache(tokens, **kwargs)


def points(model: HookedTransformer) -> list[tuple[int | None, bool]]:
    """Every point in the residual stream as ``(layer, mlp_input)``."""
    n_layers = model.cfg.n_layers
    found: list[tuple[int | None, bool]] = [(layer, False) for layer in range(n_layers)] + [(None, False)]
    if not model.cfg.attn_only:
        found += [(layer, True) for layer in range(n_layers)]
    return found


def resid_at(cache: ActivationCache, layer: int | None, mlp_input: bool) -> torch.Tensor:
    if layer is None:
        return cache["resid_post", -1]
    return cache["resid_mid" if mlp_input else "resid_pre", layer]


def assert_sums_to(stack: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(stack.sum(dim=0), expected, atol=ATOL, rtol=0)


# -- dict-like access -------------------------------------------------------------------------


def test_shorthand_keys_name_the_same_activations(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    assert cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"]
    assert cache["scale", 1, "ln1"] is cache["blocks.1.ln1.hook_scale"]
    assert cache["resid_post", -1] is cache["blocks.1.hook_resid_post"]
    assert cache["embed"] is cache["hook_embed"]
    assert cache["scale"] is cache["ln_final.hook_scale"]


def test_mapping_protocol(make_model, sample_tokens) -> None:
    model = make_model()
    _, cache = run(model, sample_tokens)
    assert len(cache) == len(model.hook_dict) - 2  # hook_result only fires with cfg.use_attn_result
    assert set(cache) == set(cache.keys()) == {name for name, _ in cache.items()}
    assert ("pattern", 1) in cache and "blocks.1.attn.hook_pattern" in cache
    assert ("nonsense", 1) not in cache and 3 not in cache
    assert cache.get("blocks.0.attn.hook_result") is None


def test_missing_key_is_a_key_error_naming_the_nearest_cached_names(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    with pytest.raises(KeyError, match=re.escape("nearest cached names: 'blocks.0.attn.hook_pattern'")):
        cache["blocks.0.attn.hook_patern"]


def test_uncached_hook_point_says_to_check_names_filter(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens, names_filter="blocks.0.hook_resid_pre")
    with pytest.raises(KeyError, match=r"was not cached.*names_filter"):
        cache["resid_post", 1]


def test_a_hook_point_that_only_runs_with_a_setting_says_so(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    with pytest.raises(KeyError, match=r"was not cached.*only runs with model\.cfg\.use_attn_result = True"):
        cache["result", 0]


def test_remove_batch_dim_drops_the_leading_axis(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens[:1])
    cache.remove_batch_dim()
    assert not cache.has_batch_dim
    assert cache["resid_pre", 0].shape == (10, 32)


def test_remove_batch_dim_needs_a_batch_of_one(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    with pytest.raises(InputError, match="batch size 3"):
        cache.remove_batch_dim()
    assert cache.has_batch_dim and cache["resid_pre", 0].shape == (3, 10, 32)


def test_to_moves_every_activation(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    assert cache.to("meta") is cache
    assert {activation.device.type for activation in cache.values()} == {"meta"}


def test_pos_slice_accepts_int_slice_list_and_tensor() -> None:
    x = torch.arange(24).reshape(2, 4, 3)
    assert torch.equal(slice_along(x, None, dim=-2), x)
    assert torch.equal(slice_along(x, -1, dim=-2), x[:, -1])
    assert torch.equal(slice_along(x, slice(1, 3), dim=-2), x[:, 1:3])
    assert torch.equal(slice_along(x, [0, 2], dim=-2), x[:, [0, 2]])
    assert torch.equal(slice_along(x, torch.tensor([3]), dim=-2), x[:, [3]])
    with pytest.raises(InputError, match="must hold integers"):
        slice_along(x, [0.5], dim=-2)


# -- residual decompositions ------------------------------------------------------------------


@pytest.mark.parametrize("overrides", ARCHITECTURES)
def test_decompose_resid_sums_to_the_residual_stream(make_model, sample_tokens, overrides) -> None:
    model = make_model(**overrides)
    _, cache = run(model, sample_tokens)
    for layer, mlp_input in points(model):
        assert_sums_to(cache.decompose_resid(layer, mlp_input=mlp_input), resid_at(cache, layer, mlp_input))


def test_decompose_resid_labels(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    _, labels = cache.decompose_resid(1, mlp_input=True, return_labels=True)
    assert labels == ["embed", "pos_embed", "0_attn_out", "0_mlp_out", "1_attn_out"]
    _, labels = cache.decompose_resid(mode="mlp", incl_embeds=False, return_labels=True)
    assert labels == ["0_mlp_out", "1_mlp_out"]


def test_attention_only_decomposition_has_no_mlp_out(make_model, sample_tokens) -> None:
    _, cache = run(make_model(attn_only=True), sample_tokens)
    _, labels = cache.decompose_resid(return_labels=True)
    assert labels == ["embed", "pos_embed", "0_attn_out", "1_attn_out"]


def test_accumulated_resid_stacks_the_stream_at_each_point(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    stack, labels = cache.accumulated_resid(incl_mid=True, return_labels=True)
    assert labels == ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"]
    assert torch.equal(stack[1], cache["resid_mid", 0])
    assert torch.equal(stack[-1], cache["resid_post", 1])
    _, labels = cache.accumulated_resid(1, mlp_input=True, return_labels=True)
    assert labels == ["0_pre", "1_pre", "1_mid"]


def test_accumulated_resid_with_ln_is_ln_final_output_minus_its_bias(make_model, sample_tokens) -> None:
    model = make_model()
    _, cache = run(model, sample_tokens)
    final = cache.accumulated_resid(apply_ln=True, pos_slice=slice(2, 5))[-1]
    expected = cache["ln_final.hook_normalized"][:, 2:5] - model.ln_final.b
    torch.testing.assert_close(final, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("overrides", ARCHITECTURES)
def test_stack_head_results_with_remainder_sums_to_the_residual_stream(make_model, sample_tokens, overrides) -> None:
    model = make_model(**overrides)
    _, cache = run(model, sample_tokens)
    for layer in (0, 1, None):
        stack, labels = cache.stack_head_results(layer, incl_remainder=True, return_labels=True)
        assert labels[-1] == "remainder" and len(labels) == 4 * (layer if layer is not None else 2) + 1
        assert_sums_to(stack, resid_at(cache, layer, False))


def test_head_results_from_z_match_the_cached_hook_result(make_model, sample_tokens) -> None:
    model = make_model(use_attn_result=True)
    _, with_result = run(model, sample_tokens)
    _, without_result = run(model, sample_tokens, names_filter=lambda name: not name.endswith("hook_result"))
    stack, labels = with_result.stack_head_results(return_labels=True, pos_slice=[1, 4])
    assert labels[:5] == ["L0H0", "L0H1", "L0H2", "L0H3", "L1H0"]
    torch.testing.assert_close(stack, without_result.stack_head_results(pos_slice=[1, 4]), atol=ATOL, rtol=0)
    torch.testing.assert_close(stack[5], with_result["result", 1][:, [1, 4], 1])


def test_head_results_need_z_or_result(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens, names_filter=lambda name: "resid" in name)
    with pytest.raises(KeyError, match=re.escape("blocks.0.attn.hook_z")):
        cache.stack_head_results()


def test_neuron_results_sum_to_mlp_out_minus_b_out(make_model, sample_tokens) -> None:
    model = make_model()
    _, cache = run(model, sample_tokens)
    stack, labels = cache.stack_neuron_results(1, return_labels=True)
    assert stack.shape == (48, 3, 10, 32) and labels[0] == "L0N0" and labels[-1] == "L0N47"
    assert_sums_to(stack, cache["mlp_out", 0] - model.blocks[0].mlp.b_out)


def test_neuron_slice_picks_neurons_in_every_block(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    stack, labels = cache.stack_neuron_results(neuron_slice=[3, 7], pos_slice=-1, return_labels=True)
    assert labels == ["L0N3", "L0N7", "L1N3", "L1N7"]
    assert stack.shape == (4, 3, 32)


def test_neuron_results_of_an_attention_only_model_are_a_config_error(make_model, sample_tokens) -> None:
    _, cache = run(make_model(attn_only=True), sample_tokens)
    with pytest.raises(ConfigError, match="attention-only"):
        cache.stack_neuron_results(1)


def test_stack_activation_stacks_over_layers(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    assert torch.equal(cache.stack_activation("pattern")[1], cache["pattern", 1])
    assert cache.stack_activation("scale", sublayer_type="ln2").shape == (2, 3, 10, 1)
    assert cache.stack_activation("resid_pre", layer=1).shape == (1, 3, 10, 32)


@pytest.mark.parametrize("expand_neurons", [True, False])
@pytest.mark.parametrize("overrides", ARCHITECTURES)
def test_full_resid_decomposition_sums_to_the_residual_stream(
    make_model, sample_tokens, overrides, expand_neurons
) -> None:
    model = make_model(**overrides)
    _, cache = run(model, sample_tokens)
    for layer, mlp_input in points(model):
        stack = cache.get_full_resid_decomposition(layer, mlp_input=mlp_input, expand_neurons=expand_neurons)
        assert_sums_to(stack, resid_at(cache, layer, mlp_input))


def test_full_resid_decomposition_labels_every_component(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    stack, labels = cache.get_full_resid_decomposition(return_labels=True)
    assert len(labels) == len(set(labels)) == stack.shape[0] == 2 * 4 + 2 * 48 + 3
    assert labels[:2] == ["L0H0", "L0H1"] and labels[-3:] == ["embed", "pos_embed", "bias"]
    _, labels = cache.get_full_resid_decomposition(expand_neurons=False, return_labels=True)
    assert labels[8:] == ["0_mlp_out", "1_mlp_out", "embed", "pos_embed", "bias"]


def test_decompositions_work_without_a_batch_axis(make_model, sample_tokens) -> None:
    model = make_model()
    _, cache = run(model, sample_tokens[:1], remove_batch_dim=True)
    stack = cache.get_full_resid_decomposition(apply_ln=True, pos_slice=-1)
    assert stack.shape == (2 * 4 + 2 * 48 + 3, 32)
    assert_sums_to(cache.decompose_resid(1), cache["resid_pre", 1])


# -- LayerNorm and logit attribution ----------------------------------------------------------


@pytest.mark.parametrize("processed", [False, True], ids=["raw", "processed"])
def test_logit_attrs_of_the_full_decomposition_plus_constants_equal_the_logits(
    make_model, sample_tokens, processed
) -> None:
    model = make_model()
    if processed:
        process_weights(model)
    logits, cache = run(model, sample_tokens)
    stack = cache.get_full_resid_decomposition()
    for token in (0, 17):
        constant = model.unembed.b_U[token]
        if model.ln_final.b is not None:
            constant = constant + model.ln_final.b @ model.W_U[:, token]
        attrs = cache.logit_attrs(stack, tokens=token)
        assert attrs.shape == (stack.shape[0], 3, 10)
        torch.testing.assert_close(attrs.sum(0) + constant, logits[..., token].detach(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("processed", [False, True], ids=["raw", "processed"])
def test_logit_diff_attrs_sum_to_the_logit_difference(make_model, sample_tokens, processed) -> None:
    model = make_model()
    if processed:
        process_weights(model)
    logits, cache = run(model, sample_tokens)
    correct, incorrect = torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    stack = cache.decompose_resid(pos_slice=-1)
    attrs = cache.logit_attrs(stack, tokens=correct, incorrect_tokens=incorrect, pos_slice=-1)
    assert attrs.shape == (stack.shape[0], 3)
    W_diff = model.W_U[:, correct] - model.W_U[:, incorrect]
    constant = model.unembed.b_U[correct] - model.unembed.b_U[incorrect]
    if model.ln_final.b is not None:
        constant = constant + model.ln_final.b @ W_diff
    batch = torch.arange(3)
    expected = logits[batch, -1, correct] - logits[batch, -1, incorrect]
    torch.testing.assert_close(attrs.sum(0) + constant, expected.detach(), atol=ATOL, rtol=0)


def test_logit_attrs_of_a_model_without_norm_are_plain_dot_products(make_model, sample_tokens) -> None:
    model = make_model(normalization_type=None)
    logits, cache = run(model, sample_tokens)
    attrs = cache.logit_attrs(cache.decompose_resid(), tokens=9)
    torch.testing.assert_close(attrs.sum(0) + model.unembed.b_U[9], logits[..., 9].detach(), atol=ATOL, rtol=0)


def test_logit_attrs_take_single_token_strings(make_model, sample_tokens) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    word_level = Tokenizer(models.WordLevel({f"w{i}": i for i in range(50)}, unk_token="w0"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    model = make_model()
    model.tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="w0")
    _, cache = run(model, sample_tokens)
    stack = cache.decompose_resid(pos_slice=-1)
    by_name = cache.logit_attrs(stack, tokens=["w3", "w4", "w5"], incorrect_tokens="w6", pos_slice=-1)
    by_id = cache.logit_attrs(stack, tokens=torch.tensor([3, 4, 5]), incorrect_tokens=6, pos_slice=-1)
    torch.testing.assert_close(by_name, by_id, atol=0, rtol=0)


def test_logit_attrs_reject_tokens_that_do_not_line_up(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    with pytest.raises(InputError, match="do not line up"):
        cache.logit_attrs(cache.decompose_resid(), tokens=torch.tensor([1, 2]))
    with pytest.raises(InputError, match="same shape"):
        cache.logit_attrs(cache.decompose_resid(), tokens=torch.tensor([1, 2, 3]), incorrect_tokens=[4, 5])


def test_apply_ln_to_stack_with_a_batch_slice(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    stack = cache.decompose_resid(pos_slice=[0, 9])
    sliced = cache.apply_ln_to_stack(stack, pos_slice=[0, 9], batch_slice=slice(1, 3))
    torch.testing.assert_close(sliced, cache.apply_ln_to_stack(stack, pos_slice=[0, 9])[:, 1:3], atol=0, rtol=0)


def test_apply_ln_to_stack_needs_the_cached_scale(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens, names_filter=lambda name: "ln1" not in name)
    with pytest.raises(KeyError, match=re.escape("blocks.1.ln1.hook_scale")):
        cache.decompose_resid(1, apply_ln=True)


def test_layer_outside_the_model_is_an_input_error(make_model, sample_tokens) -> None:
    _, cache = run(make_model(), sample_tokens)
    with pytest.raises(InputError, match=r"layer must be in 0\.\.2"):
        cache.decompose_resid(3)
    with pytest.raises(InputError, match="mlp_input"):
        cache.accumulated_resid(None, mlp_input=True)
