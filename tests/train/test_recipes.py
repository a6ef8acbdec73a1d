"""Every zoo recipe runs (a few steps), so recipes cannot rot between the rare full training runs."""

from __future__ import annotations

import pytest
import torch

from circuitlab import ConfigError
from circuitlab.train import train
from circuitlab.train.recipes import RECIPES, get_recipe, with_repeated_spans


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_trains_and_measures_its_card_metrics(name: str, tmp_path) -> None:
    recipe = get_recipe(name).with_steps(3)
    run = recipe.prepare(recipe)
    result = train(run.model, run.batch_for_step, recipe.training, tmp_path, loss_fn=run.loss_fn,
                   eval_fn=run.eval_fn, progress=False)  # fmt: skip
    assert len(result.train_losses) == 3 and all(torch.isfinite(torch.tensor(result.train_losses)))
    metrics = recipe.card_metrics(run.model, run)
    expected = {"test_accuracy"} if name.startswith("modadd") else {"induction_score_max", "validation_loss"}
    assert expected <= set(metrics)
    assert (tmp_path / "checkpoint.pt").exists()


def test_repeated_spans_copy_an_earlier_span_later() -> None:
    tokens = torch.arange(64).repeat(8, 1)
    mixed = with_repeated_spans(tokens, [0, 1], share=1.0)
    assert torch.equal(mixed[:, 0], tokens[:, 0])
    for row in mixed:
        changed = (row != torch.arange(64)).nonzero().flatten()
        assert len(changed) >= 4
        start = int(changed[0])
        length = int(changed[-1]) - start + 1
        source = int(row[start])
        assert torch.equal(row[start : start + length], torch.arange(source, source + length))
        assert source + length <= start  # the copy comes after its source and does not overlap it


def test_unknown_recipe_lists_the_recipes() -> None:
    with pytest.raises(ConfigError, match="attn-only-2l"):
        get_recipe("attn-only-9l")


@pytest.mark.parametrize("name", ["modadd-113", "attn-only-1l"])
def test_a_finished_run_publishes_into_the_zoo_with_its_measured_card(name: str, tmp_path) -> None:
    from circuitlab.train.recipes import publish_recipe_result, run_recipe
    from circuitlab.zoo import card, load

    result = run_recipe(name, steps=3, out_dir=str(tmp_path / "run"), progress=False)
    published = publish_recipe_result(result, weights_root=str(tmp_path / "zoo"))
    assert published.steps == 3 and published.tokens_seen == 3 * result.run.tokens_per_batch
    assert published.metrics == result.metrics
    assert card(name, root=str(tmp_path / "zoo")).files == published.files
    reloaded = load(name, root=str(tmp_path / "zoo"))
    tokens = torch.randint(0, result.run.model.cfg.d_vocab, (2, 3))
    torch.testing.assert_close(reloaded(tokens), result.run.model(tokens), atol=5e-2, rtol=0)  # stored in fp16


def test_an_unfinished_run_is_not_published(tmp_path) -> None:
    from circuitlab.train.recipes import publish_recipe_result, run_recipe

    result = run_recipe("modadd-113", steps=3, out_dir=str(tmp_path / "run"), progress=False)
    result.recipe = get_recipe("modadd-113")  # the full recipe asks for 5000 steps
    with pytest.raises(ConfigError, match="stopped at step 3 of 5000"):
        publish_recipe_result(result, weights_root=str(tmp_path / "zoo"))
