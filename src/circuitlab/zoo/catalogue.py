"""What the zoo holds: its models' names, cards, sizes and checkpoint series."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from circuitlab.errors import ModelNotFoundError
from circuitlab.zoo.integrity import verify
from circuitlab.zoo.layout import CARD_FILE, is_valid_name, zoo_root
from circuitlab.zoo.model_card import ModelCard, read_card

Root = str | os.PathLike[str] | None


@dataclass(frozen=True)
class ZooEntry:
    """One model in the zoo: its name, the card's one-line summary, and the bytes its folder takes on disk."""

    name: str
    summary: str
    size_bytes: int


def model_names(root: Root = None) -> list[str]:
    """The names of the zoo's models, sorted (folders that hold a ``card.json``)."""
    folder = zoo_root(root)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if is_valid_name(p.name) and (p / CARD_FILE).is_file())


def list_models(root: Root = None) -> list[ZooEntry]:
    """Every model in the zoo, sorted by name. The size counts the model's own folder, checkpoints included."""
    folder = zoo_root(root)
    entries = []
    for name in model_names(root):
        summary = read_card(folder / name / CARD_FILE).summary
        size = sum(path.stat().st_size for path in (folder / name).rglob("*") if path.is_file())
        entries.append(ZooEntry(name=name, summary=summary, size_bytes=size))
    return entries


def card(name: str, root: Root = None) -> ModelCard:
    """The card of the zoo model ``name``; an unknown name raises ``ModelNotFoundError`` with suggestions."""
    folder = zoo_root(root)
    path = folder / name / CARD_FILE
    if not is_valid_name(name) or not path.is_file():
        raise model_not_found(name, model_names(root), folder)
    return read_card(path)


def checkpoint_steps(name: str, root: Root = None) -> list[int]:
    """The training steps at which ``name`` has a saved checkpoint, in order (empty if it has no series)."""
    return list(card(name, root).checkpoint_steps)


def verify_model(name: str, root: Root = None) -> ModelCard:
    """Check every file of ``name`` (checkpoints and tokenizer included) against its card; returns the card."""
    model_card = card(name, root)
    verify(model_card, zoo_root(root))
    return model_card


def model_not_found(name: object, names: list[str], folder: Path) -> ModelNotFoundError:
    if not names:
        return ModelNotFoundError(
            f"there is no zoo model named {name!r}: the zoo in {folder} is empty. "
            "Train and publish one with `circuitlab train --recipe NAME`"
        )
    nearest = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(n) for n in nearest)}?" if nearest else "."
    return ModelNotFoundError(f"there is no zoo model named {name!r}{hint} The zoo holds: {', '.join(names)}")
