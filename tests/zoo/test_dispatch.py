"""circuitlab.load takes a zoo model's name or a folder that save_pretrained wrote."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import circuitlab
from circuitlab import HookedTransformer, save_pretrained
from circuitlab.errors import InputError, ModelNotFoundError
from tests.zoo.conftest import stand_in_model

PublishStandIn = Callable[..., HookedTransformer]


def test_circuitlab_load_is_the_zoo_aware_loader() -> None:
    assert circuitlab.load is circuitlab.zoo.load_name_or_path
    assert circuitlab.list_models is circuitlab.zoo.list_models


def test_a_zoo_name_loads_the_zoo_model_in_float32(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    model = publish_stand_in("m", dtype=torch.float16)
    loaded = circuitlab.load("m", root=zoo)
    assert loaded.dtype == torch.float32
    torch.testing.assert_close(loaded.W_E, model.W_E, atol=1e-3, rtol=1e-3)


def test_a_zoo_name_passes_the_checkpoint_on(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m", checkpoints={5: stand_in_model(seed=5).state_dict()}, dtype=torch.float32)
    assert torch.equal(circuitlab.load("m", checkpoint=5, root=zoo).W_E, stand_in_model(seed=5).W_E)


def test_a_folder_loads_with_the_own_format_loader_in_its_saved_dtype(tmp_path: Path, zoo: Path) -> None:
    model = stand_in_model().to(torch.bfloat16)
    folder = save_pretrained(model, tmp_path / "saved")
    loaded = circuitlab.load(str(folder), root=zoo)
    assert loaded.dtype == torch.bfloat16
    assert torch.equal(loaded.W_E, model.W_E)


def test_a_path_object_is_a_folder_even_if_a_zoo_model_shares_its_name(
    tmp_path: Path, zoo: Path, publish_stand_in: PublishStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_stand_in("m", seed=0)
    saved = stand_in_model(seed=7)
    save_pretrained(saved, tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    assert torch.equal(circuitlab.load(Path("m"), root=zoo).W_E, saved.W_E)
    assert torch.equal(circuitlab.load("./m", root=zoo).W_E, saved.W_E)
    assert not torch.equal(circuitlab.load("m", root=zoo).W_E, saved.W_E)


def test_a_checkpoint_makes_no_sense_for_a_folder(tmp_path: Path, zoo: Path) -> None:
    folder = save_pretrained(stand_in_model(), tmp_path / "saved")
    with pytest.raises(InputError, match="checkpoint=3 picks a step"):
        circuitlab.load(folder, checkpoint=3, root=zoo)


def test_neither_a_name_nor_a_folder_lists_the_zoo(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("attn-only-2l")
    with pytest.raises(ModelNotFoundError, match=r"'attn-only-3l' is not a folder.*did you mean 'attn-only-2l'"):
        circuitlab.load("attn-only-3l", root=zoo)
