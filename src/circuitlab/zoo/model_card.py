"""ModelCard: what a zoo model is, how it was trained, and a sha256 for each of its files."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuitlab.errors import CheckpointError

CARD_VERSION = 1


@dataclass
class ModelCard:
    """The ``card.json`` next to a zoo model's weights.

    A training recipe fills in what it knows (name to ``notes``); ``publish`` fills in the rest
    (``files`` to ``created``) from what it writes. ``files`` maps each file's path, relative to the
    zoo's ``weights`` folder, to its sha256; loading refuses a file whose hash differs.
    """

    name: str
    summary: str
    description: str = ""
    recipe: str = ""
    # The corpus with its version and hash, or the synthetic task and its parameters.
    training_data: str = ""
    tokens_seen: int = 0
    steps: int = 0
    wall_time_seconds: float = 0.0
    train_loss: float | None = None
    validation_loss: float | None = None
    # e.g. {"induction_score_max": 0.93, "previous_token_score_max": 0.88, "test_accuracy": 1.0}
    metrics: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    # The shared tokenizer's folder under weights/_tokenizers, or None for a model whose tokens are not text.
    tokenizer: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    dtype: str = ""
    n_parameters: int = 0
    checkpoint_steps: list[int] = field(default_factory=list)
    created: str = ""
    card_version: int = CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelCard:
        """Build a card from parsed JSON; anything that does not fit raises ``CheckpointError``."""
        if not isinstance(values, dict):
            raise CheckpointError(f"a model card is a JSON object, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        version = values.get("card_version", CARD_VERSION)
        if not isinstance(version, int) or version > CARD_VERSION:
            raise CheckpointError(
                f"the card has card_version {version!r}; this circuitlab reads versions up to {CARD_VERSION}: "
                "upgrade circuitlab to read it"
            )
        if unknown:
            raise CheckpointError(f"the card has unknown fields {unknown}; valid fields: {sorted(known)}")
        missing = [name for name in ("name", "summary") if not isinstance(values.get(name), str)]
        if missing:
            raise CheckpointError(f"the card lacks the text fields {missing}")
        files = values.get("files", {})
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise CheckpointError("the card's 'files' should map each file's relative path to its sha256 (both text)")
        steps = values.get("checkpoint_steps", [])
        if not isinstance(steps, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise CheckpointError(f"the card's 'checkpoint_steps' should be a list of integers, got {steps!r}")
        return cls(**{**values, "checkpoint_steps": sorted(steps)})

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise CheckpointError(f"the card is not valid JSON ({err})") from None
        return cls.from_dict(values)


def read_card(path: Path) -> ModelCard:
    """The card in ``path``; a missing or damaged file raises ``CheckpointError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"the model card {path} cannot be read ({err})") from None
    try:
        return ModelCard.from_json(text)
    except CheckpointError as err:
        raise CheckpointError(
            f"the model card {path} is damaged: {err}. Reinstall circuitlab to restore it, "
            "or retrain the model with `circuitlab train --recipe NAME`"
        ) from None
