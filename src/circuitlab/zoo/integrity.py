"""Checking a zoo model's files against the sha256 its card records, before anything reads them.

Hashes are remembered for the life of the process, keyed by path, size and modification time, so
loading the same model again costs a ``stat`` per file instead of reading it twice. A file changed
in place within one clock tick and at the same size would go unnoticed until the next process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from circuitlab.data.files import sha256_file
from circuitlab.errors import CheckpointError
from circuitlab.zoo.model_card import ModelCard

_known_hashes: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The sha256 of ``path``, computed once per process for each (path, size, mtime)."""
    stat = path.stat()
    key = (os.fspath(path.absolute()), stat.st_size, stat.st_mtime_ns)
    digest = _known_hashes.get(key)
    if digest is None:
        digest = sha256_file(path)
        _known_hashes[key] = digest
    return digest


def forget_hashes() -> None:
    """Drop every remembered hash, so the next check reads each file again."""
    _known_hashes.clear()


def verify_files(root: Path, card: ModelCard, relative_paths: Iterable[str]) -> None:
    """Raise one ``CheckpointError`` naming every listed file that is missing or whose hash differs from the card's."""
    problems = []
    for relative in relative_paths:
        expected = card.files.get(relative)
        path = root / relative
        if expected is None:
            problems.append(f"{path}: the card records no sha256 for it (the card is incomplete)")
        elif not path.is_file():
            problems.append(f"{path} is missing (expected sha256 {expected})")
        else:
            actual = file_sha256(path)
            if actual != expected:
                problems.append(f"{path} is damaged: its sha256 is {actual}, expected {expected}")
    if problems:
        raise CheckpointError(
            f"zoo model {card.name!r} failed its integrity check:\n  " + "\n  ".join(problems) + "\n" + _repair(card)
        )


def verify(card: ModelCard, root: Path) -> None:
    """Check every file the card lists (the checkpoint series included)."""
    verify_files(root, card, sorted(card.files))


def _repair(card: ModelCard) -> str:
    recipe = card.recipe or "NAME"
    return (
        "The files changed after the model was published. Reinstall circuitlab "
        "(pip install --force-reinstall circuitlab) to restore the shipped files, or retrain and republish "
        f"the model with `circuitlab train --recipe {recipe}`."
    )
