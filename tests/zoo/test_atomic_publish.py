"""Publishing is all or nothing: a failure midway leaves the zoo's earlier version of the model as it was."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

from circuitlab.data import train_tokenizer
from circuitlab.zoo import load, publish, publishing, verify_model
from tests.zoo.conftest import TOKENIZER, stand_in_card, stand_in_model


def hidden_leftovers(zoo: Path) -> list[str]:
    return sorted(path.name for path in zoo.rglob(".*"))


@pytest.fixture
def old_zoo(zoo: Path) -> Path:
    publish(stand_in_model(seed=1), "m", stand_in_card("m"), weights_root=zoo)
    return zoo


def test_republishing_replaces_the_old_version(old_zoo: Path) -> None:
    publish(stand_in_model(seed=2), "m", stand_in_card("m"), dtype=torch.float32, weights_root=old_zoo)
    assert torch.equal(load("m", root=old_zoo).W_E, stand_in_model(seed=2).W_E)
    assert hidden_leftovers(old_zoo) == []


def test_a_failure_while_writing_leaves_the_old_entry(old_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save_file = publishing.save_file
    calls: list[Path] = []

    def disk_fills_up(tensors: Any, path: Path, **kwargs: Any) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError("No space left on device")
        real_save_file(tensors, path, **kwargs)

    monkeypatch.setattr(publishing, "save_file", disk_fills_up)
    series = {10: stand_in_model(seed=3).state_dict()}
    with pytest.raises(OSError, match="No space left"):
        publish(stand_in_model(seed=2), "m", stand_in_card("m"), checkpoints=series, weights_root=old_zoo)
    verify_model("m", root=old_zoo)
    torch.testing.assert_close(load("m", root=old_zoo).W_E, stand_in_model(seed=1).W_E, atol=1e-3, rtol=1e-3)
    assert hidden_leftovers(old_zoo) == []


def test_a_failure_moving_the_model_into_place_restores_its_old_tokenizer(
    old_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retrained = tmp_path / "retrained"
    retrained.mkdir()
    (retrained / "tokenizer.json").write_text(train_tokenizer(["abc abd abe"] * 3, vocab_size=280).to_str())
    real_replace = os.replace

    def rename_fails_for_the_model(source: Any, target: Any) -> None:
        if Path(source).name.startswith(".m.publishing-"):
            raise OSError("rename failed")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", rename_fails_for_the_model)
    with pytest.raises(OSError, match="rename failed"):
        publish(stand_in_model(seed=2), "m", stand_in_card("m"), tokenizer_dir=retrained, weights_root=old_zoo)
    monkeypatch.undo()
    verify_model("m", root=old_zoo)  # the card's hash of the tokenizer matches the tokenizer on disk
    assert sorted(p.name for p in (old_zoo / "_tokenizers").iterdir()) == [TOKENIZER]
    assert hidden_leftovers(old_zoo) == []
