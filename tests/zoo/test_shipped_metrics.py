"""Each shipped model's card is re-measured, not read: the metrics are recomputed from the weights.

Runs over the models the package ships; the paper-level requirements are checked for each model
that is present (the induction-head contrast, grokking).
"""

from __future__ import annotations

import sys

import pytest

import circuitlab
from circuitlab.analysis import induction_scores, previous_token_scores
from circuitlab.train.recipes import get_recipe, repeated_sequence_losses
from circuitlab.zoo import card, checkpoint_steps, list_models, model_names

SHIPPED = sorted(entry.name for entry in list_models())


@pytest.fixture(scope="module")
def remeasured() -> dict[str, dict[str, float]]:
    """Every shipped model's card metrics, recomputed from its stored (float16) weights."""
    results = {}
    for name in SHIPPED:
        recipe = get_recipe(card(name).recipe)
        run = recipe.prepare(recipe)
        results[name] = recipe.card_metrics(circuitlab.load(name), run)
    return results


def test_every_shipped_model_comes_from_a_recipe() -> None:
    for name in SHIPPED:
        assert get_recipe(card(name).recipe).name == name


@pytest.mark.parametrize("name", SHIPPED)
def test_card_metrics_match_the_weights(name: str, remeasured) -> None:
    stated = card(name).metrics
    measured = remeasured[name]
    assert set(stated) == set(measured)
    same_python = f"{sys.version_info.major}.{sys.version_info.minor}" in card(name).training_data
    for metric, value in stated.items():
        # Weights ship in float16 while the card was measured in float32; losses on the corpus
        # also depend on the Python release the corpus was built from.
        tolerance = 0.02 if (same_python or "loss" not in metric) else 0.3
        assert measured[metric] == pytest.approx(value, abs=tolerance), metric


def test_attn_only_2l_has_an_induction_circuit() -> None:
    if "attn-only-2l" not in model_names():
        pytest.fail("attn-only-2l is not shipped")
    model = circuitlab.load("attn-only-2l")
    induction = induction_scores(model, bos_token=model.bos_token_id).scores
    assert induction[1].max() >= 0.4, "no layer-1 head scores 0.4 as an induction head"
    previous = previous_token_scores(model, model.to_tokens(["def f(x):\n    return x + 1\n" * 4])).scores
    assert int(previous.flatten().argmax()) < model.cfg.n_heads, "the strongest previous-token head is not in layer 0"
    losses = repeated_sequence_losses(model)
    assert losses["repeated_half_loss"] < losses["first_half_loss"] - 1.0


def test_attn_only_1l_has_no_induction_head() -> None:
    if "attn-only-1l" not in model_names():
        pytest.fail("attn-only-1l is not shipped")
    model = circuitlab.load("attn-only-1l")
    assert induction_scores(model, bos_token=model.bos_token_id).scores.max() < 0.1


def test_modadd_113_grokked() -> None:
    if "modadd-113" not in model_names():
        pytest.fail("modadd-113 is not shipped")
    metrics = card("modadd-113").metrics
    assert metrics["train_accuracy"] == 1.0 and metrics["test_accuracy"] >= 0.99
    steps = checkpoint_steps("modadd-113")
    assert len(steps) >= 10
    from circuitlab.data import modular_addition_dataset
    from circuitlab.train.recipes import modadd_metrics

    data = modular_addition_dataset(113, train_fraction=0.3, seed=0)
    early = modadd_metrics(circuitlab.load("modadd-113", checkpoint=steps[1]), data)
    # Grokking: the training set is fitted long before the test set.
    assert early["train_accuracy"] > 0.9 and early["test_accuracy"] < 0.5


def test_the_shipped_weights_stay_within_40_mb() -> None:
    from circuitlab.zoo import weights_dir

    total = sum(path.stat().st_size for path in weights_dir().rglob("*") if path.is_file())
    assert total <= 40 * 2**20, f"the zoo ships {total / 2**20:.1f} MiB"
