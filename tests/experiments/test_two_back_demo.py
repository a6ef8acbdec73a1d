"""The quick demo finds a real division of labour between two heads and proves it by ablation."""

from __future__ import annotations

import pytest

from circuitlab.experiments import run_two_back_demo


@pytest.fixture(scope="module")
def result():
    return run_two_back_demo(steps=400, seed=0)


def test_demo_model_learns_the_task(result) -> None:
    assert result.accuracy > 0.95
    assert result.chance == pytest.approx(1 / 64)


def test_each_head_specialises_on_one_offset(result) -> None:
    previous, two_back = result.head_looking_back(1), result.head_looking_back(2)
    assert previous != two_back
    assert result.offset_scores[previous][1] > 0.8
    assert result.offset_scores[two_back][2] > 0.8


def test_ablating_either_head_leaves_one_token_known(result) -> None:
    # Knowing one of the two tokens gives 1/8 accuracy on pairs drawn from 8 x 8 labels.
    for accuracy in result.ablated_accuracy:
        assert 0.08 < accuracy < 0.2
