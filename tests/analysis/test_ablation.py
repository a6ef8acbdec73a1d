"""Ablation equals the same knock-out written by hand with hooks, and names components clearly."""

from __future__ import annotations

import pytest
import torch

from circuitlab import HookedTransformer, TransformerConfig
from circuitlab.analysis import AblationResult, ablate
from circuitlab.errors import InputError

VOCAB = 50


def random_model(attn_only: bool = False) -> HookedTransformer:
    cfg = TransformerConfig(n_layers=2, d_model=16, n_ctx=10, d_vocab=VOCAB, n_heads=2, attn_only=attn_only, seed=0)
    model = HookedTransformer(cfg)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.W_O.mul_(20.0)  # so that heads move the logits visibly
    return model


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return random_model()


def last_logit(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, -1, 3]


def tokens(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, 7), generator=torch.Generator().manual_seed(seed))


def run_with_replacement(model, tokens, hook_name, index, replacement) -> torch.Tensor:
    """The metric with ``activation[index] = replacement`` at ``hook_name``, written by hand."""

    def replace(activation, hook):
        activation = activation.clone()
        activation[index] = replacement
        return activation

    with torch.inference_mode():
        return last_logit(model.run_with_hooks(tokens, fwd_hooks=[(hook_name, replace)]))


def test_zero_ablating_a_head_equals_zeroing_its_z_by_hand(model) -> None:
    inputs = tokens()
    result = ablate(model, inputs, last_logit, "L1H0")
    assert isinstance(result, AblationResult)
    expected = run_with_replacement(model, inputs, "blocks.1.attn.hook_z", (slice(None), slice(None), 0), 0.0)
    torch.testing.assert_close(result.ablated, expected)
    with torch.inference_mode():
        torch.testing.assert_close(result.original, last_logit(model(inputs)))
    assert not torch.allclose(result.ablated, result.original)


def test_a_head_may_be_named_by_a_layer_head_pair(model) -> None:
    inputs = tokens()
    torch.testing.assert_close(
        ablate(model, inputs, last_logit, (1, 0)).ablated, ablate(model, inputs, last_logit, "L1H0").ablated
    )


def test_zero_ablating_a_neuron_and_a_layer_equal_hand_written_hooks(model) -> None:
    inputs = tokens()
    neuron = ablate(model, inputs, last_logit, "L0N17").ablated
    expected = run_with_replacement(model, inputs, "blocks.0.mlp.hook_post", (slice(None), slice(None), 17), 0.0)
    torch.testing.assert_close(neuron, expected)
    attention = ablate(model, inputs, last_logit, ["attn.0"]).ablated
    torch.testing.assert_close(attention, run_with_replacement(model, inputs, "blocks.0.hook_attn_out", (), 0.0))


def test_mean_ablation_writes_the_mean_over_the_reference_batch_and_positions(model) -> None:
    inputs, reference = tokens(), tokens(batch=5, seed=1)
    result = ablate(model, inputs, last_logit, "L0H1", method="mean", reference_tokens=reference)
    with torch.inference_mode():
        _, cache = model.run_with_cache(reference, names_filter="blocks.0.attn.hook_z")
    mean = cache["blocks.0.attn.hook_z"][:, :, 1].mean(dim=(0, 1))  # (d_head,)
    expected = run_with_replacement(model, inputs, "blocks.0.attn.hook_z", (slice(None), slice(None), 1), mean)
    torch.testing.assert_close(result.ablated, expected)


def test_resample_ablation_takes_activations_from_the_reference(model) -> None:
    inputs, reference = tokens(), tokens(batch=1, seed=1)
    result = ablate(model, inputs, last_logit, "mlp.1", method="resample", reference_tokens=reference)
    with torch.inference_mode():
        _, cache = model.run_with_cache(reference, names_filter="blocks.1.hook_mlp_out")
    expected = run_with_replacement(model, inputs, "blocks.1.hook_mlp_out", (), cache["blocks.1.hook_mlp_out"][0])
    torch.testing.assert_close(result.ablated, expected)


def test_resample_ablation_without_reference_swaps_in_another_row(model) -> None:
    inputs = tokens(batch=2)
    result = ablate(model, inputs, last_logit, "L1H1", method="resample")
    with torch.inference_mode():
        _, cache = model.run_with_cache(inputs, names_filter="blocks.1.attn.hook_z")
    swapped = cache["blocks.1.attn.hook_z"][[1, 0], :, 1]  # with two rows, the other row is the only choice
    expected = run_with_replacement(model, inputs, "blocks.1.attn.hook_z", (slice(None), slice(None), 1), swapped)
    torch.testing.assert_close(result.ablated, expected)


def test_resample_ablation_is_reproducible_from_its_seed(model) -> None:
    inputs, reference = tokens(batch=4), tokens(batch=6, seed=2)
    first = ablate(model, inputs, last_logit, "L0H0", method="resample", reference_tokens=reference, seed=3)
    again = ablate(model, inputs, last_logit, "L0H0", method="resample", reference_tokens=reference, seed=3)
    torch.testing.assert_close(first.ablated, again.ablated)


def test_unknown_component_names_list_the_valid_forms(model) -> None:
    for bad in ("head 1", "L1X2", "attn0", (1, 2, 3)):
        with pytest.raises(InputError, match=r"'L1H2' or \(1, 2\).*'L0N17'.*'attn.0' or 'mlp.1'"):
            ablate(model, tokens(), last_logit, [bad])


def test_components_outside_the_model_are_errors(model) -> None:
    with pytest.raises(InputError, match="layer 2 is not in"):
        ablate(model, tokens(), last_logit, "L2H0")
    with pytest.raises(InputError, match="head 5 is not in"):
        ablate(model, tokens(), last_logit, "L0H5")
    with pytest.raises(InputError, match="neuron 64 is not in"):
        ablate(model, tokens(), last_logit, "L0N64")


@pytest.mark.parametrize("component", ["mlp.0", "L1N3"])
def test_mlp_components_of_an_attention_only_model_are_errors(component) -> None:
    with pytest.raises(InputError, match="attention-only"):
        ablate(random_model(attn_only=True), tokens(), last_logit, component)


def test_bad_method_and_resampling_a_single_row_are_errors(model) -> None:
    with pytest.raises(InputError, match="'zero', 'mean' or 'resample'"):
        ablate(model, tokens(), last_logit, "L0H0", method="random")
    with pytest.raises(InputError, match="reference_tokens"):
        ablate(model, tokens(batch=1), last_logit, "L0H0", method="resample")
    with pytest.raises(InputError, match="as many positions"):
        ablate(model, tokens(), last_logit, "L0H0", method="resample", reference_tokens=tokens()[:, :4])
