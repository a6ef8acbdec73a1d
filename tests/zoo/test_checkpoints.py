"""A checkpoint series: the weights at several training steps, loaded by step number."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from circuitlab.errors import CheckpointError, InputError, ModelNotFoundError
from circuitlab.zoo import card, checkpoint_steps, load, publish
from tests.zoo.conftest import sample_tokens, stand_in_card, stand_in_model

STEPS = (0, 50, 200)


@pytest.fixture
def series_zoo(zoo: Path) -> Path:
    """Model 'm' whose step-N checkpoint holds the weights of stand_in_model(seed=N), all in float32."""
    series = {step: stand_in_model(seed=step).state_dict() for step in STEPS}
    final = stand_in_model(seed=999)
    publish(final, "m", stand_in_card("m"), checkpoints=series, dtype=torch.float32, weights_root=zoo)
    return zoo


def test_checkpoint_steps_lists_the_series_in_order(series_zoo: Path) -> None:
    assert checkpoint_steps("m", root=series_zoo) == list(STEPS)


def test_loading_a_checkpoint_gives_that_steps_weights(series_zoo: Path) -> None:
    loaded = load("m", checkpoint=50, root=series_zoo)
    with torch.no_grad():
        assert torch.equal(loaded(sample_tokens()), stand_in_model(seed=50)(sample_tokens()))


def test_loading_without_a_checkpoint_gives_the_final_weights(series_zoo: Path) -> None:
    assert torch.equal(load("m", root=series_zoo).W_E, stand_in_model(seed=999).W_E)


def test_checkpoint_files_are_listed_with_hashes_on_the_card(series_zoo: Path) -> None:
    files = card("m", root=series_zoo).files
    assert {f"m/checkpoints/step{step}.safetensors" for step in STEPS} <= set(files)


def test_unknown_step_names_the_nearest_and_the_saved_steps(series_zoo: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no checkpoint at step 60 \(nearest: 50\); steps saved: 0, 50, 200"):
        load("m", checkpoint=60, root=series_zoo)


def test_a_checkpoint_must_be_a_step_number(series_zoo: Path) -> None:
    with pytest.raises(InputError, match=r"takes a training step \(an integer\), got '50'"):
        load("m", checkpoint="50", root=series_zoo)  # type: ignore[arg-type]


def test_a_model_without_a_series_says_so(zoo: Path) -> None:
    publish(stand_in_model(), "m", stand_in_card("m"), weights_root=zoo)
    assert checkpoint_steps("m", root=zoo) == []
    with pytest.raises(ModelNotFoundError, match="no checkpoint series"):
        load("m", checkpoint=0, root=zoo)


def test_publish_refuses_a_checkpoint_that_does_not_fit_the_model(zoo: Path) -> None:
    bad = stand_in_model().state_dict()
    bad["embed.W_E"] = bad["embed.W_E"][:10]
    with pytest.raises(CheckpointError, match=r"for step 7 does not fit the model; mis-shaped tensors: embed\.W_E"):
        publish(stand_in_model(), "m", stand_in_card("m"), checkpoints={7: bad}, weights_root=zoo)
