"""ModelCard: what a zoo model is and how it was trained, kept as JSON next to its weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuitlab.errors import CheckpointError
from circuitlab.zoo import ModelCard
from circuitlab.zoo.model_card import CARD_VERSION, read_card


def full_card() -> ModelCard:
    return ModelCard(
        name="attn-only-2l",
        summary="A 2-layer attention-only model with induction heads",
        description="Trained on the standard-library corpus.",
        recipe="attn-only-2l",
        training_data="stdlib-py3.11 v1 sha256 09c1dbc64496",
        tokens_seen=123_456_789,
        steps=20_000,
        wall_time_seconds=1234.5,
        train_loss=2.5,
        validation_loss=2.75,
        metrics={"induction_score_max": 0.9, "previous_token_score_max": 0.8},
        notes="mixed in sequences that repeat an earlier span",
        tokenizer="stdlib-4096",
        files={"attn-only-2l/model.safetensors": "ab" * 32},
        dtype="float16",
        n_parameters=2_600_000,
        checkpoint_steps=[0, 100, 1000],
        created="2025-01-01",
    )


def test_card_round_trips_through_json() -> None:
    card = full_card()
    assert ModelCard.from_json(card.to_json()) == card


def test_card_json_is_a_plain_object_with_every_field() -> None:
    values = json.loads(full_card().to_json())
    assert values["metrics"] == {"induction_score_max": 0.9, "previous_token_score_max": 0.8}
    assert values["card_version"] == CARD_VERSION
    assert values["tokenizer"] == "stdlib-4096"


def test_a_card_needs_only_a_name_and_summary() -> None:
    card = ModelCard.from_dict({"name": "m", "summary": "s"})
    assert card.files == {} and card.checkpoint_steps == [] and card.tokenizer is None


def test_card_with_unknown_fields_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(CheckpointError, match=r"unknown fields \['colour'\].*valid fields"):
        ModelCard.from_dict({"name": "m", "summary": "s", "colour": "red"})


def test_card_from_a_newer_circuitlab_asks_for_an_upgrade() -> None:
    with pytest.raises(CheckpointError, match="upgrade circuitlab"):
        ModelCard.from_dict({"name": "m", "summary": "s", "card_version": CARD_VERSION + 1})


def test_card_without_a_summary_is_refused() -> None:
    with pytest.raises(CheckpointError, match="summary"):
        ModelCard.from_dict({"name": "m"})


def test_damaged_card_file_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_text('{"name": "m", "summ')
    with pytest.raises(CheckpointError, match=r"card\.json is damaged.*not valid JSON"):
        read_card(path)
