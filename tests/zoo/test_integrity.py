"""Every file is checked against the sha256 on the card before it is read; damage is reported with a way to repair."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from circuitlab import HookedTransformer
from circuitlab.data.files import sha256_file
from circuitlab.errors import CheckpointError
from circuitlab.zoo import card, integrity, load, publish, verify_model
from tests.zoo.conftest import TOKENIZER, stand_in_card, stand_in_model

PublishStandIn = Callable[..., HookedTransformer]


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_byte_names_the_file_and_both_hashes(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    path = zoo / "m" / "model.safetensors"
    expected = card("m", root=zoo).files["m/model.safetensors"]
    flip_a_byte(path)
    with pytest.raises(CheckpointError) as raised:
        load("m", root=zoo)
    message = str(raised.value)
    assert f"{path} is damaged: its sha256 is {sha256_file(path)}, expected {expected}" in message


def test_a_missing_file_is_named_with_its_expected_hash(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    expected = card("m", root=zoo).files["m/config.json"]
    (zoo / "m" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"config.json is missing (expected sha256 {expected})")):
        load("m", root=zoo)


def test_a_damaged_shared_tokenizer_is_caught(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    flip_a_byte(zoo / "_tokenizers" / TOKENIZER / "tokenizer.json")
    with pytest.raises(CheckpointError, match=rf"_tokenizers/{TOKENIZER}/tokenizer\.json is damaged"):
        load("m", root=zoo)


def test_the_error_says_how_to_repair(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    (zoo / "m" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"Reinstall circuitlab.*circuitlab train --recipe stand-in"):
        load("m", root=zoo)


def test_a_damaged_checkpoint_fails_only_when_it_is_needed(zoo: Path) -> None:
    series = {1: stand_in_model(seed=1).state_dict()}
    publish(stand_in_model(), "m", stand_in_card("m"), checkpoints=series, weights_root=zoo)
    flip_a_byte(zoo / "m" / "checkpoints" / "step1.safetensors")
    load("m", root=zoo)
    with pytest.raises(CheckpointError, match=r"step1\.safetensors is damaged"):
        load("m", checkpoint=1, root=zoo)
    with pytest.raises(CheckpointError, match=r"step1\.safetensors is damaged"):
        verify_model("m", root=zoo)


def test_an_intact_model_verifies(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    assert verify_model("m", root=zoo).name == "m"


def test_repeated_loads_hash_each_file_once(
    zoo: Path, publish_stand_in: PublishStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_stand_in("m")
    hashed: list[Path] = []
    monkeypatch.setattr(integrity, "sha256_file", lambda path: hashed.append(path) or sha256_file(path))
    load("m", root=zoo)
    first = len(hashed)
    load("m", root=zoo, dtype=torch.float16)
    assert first == 4  # config, weights, tokenizer.json, tokenizer_config.json
    assert len(hashed) == first


def test_a_file_changed_after_a_load_is_hashed_again(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    load("m", root=zoo)
    path = zoo / "m" / "model.safetensors"
    before = path.stat().st_mtime_ns
    flip_a_byte(path)
    os.utime(path, ns=(before + 10**9, before + 10**9))  # a later write, whatever the clock's resolution
    with pytest.raises(CheckpointError, match=r"model\.safetensors is damaged"):
        load("m", root=zoo)
