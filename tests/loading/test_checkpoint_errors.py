"""Checkpoints that do not fit: each problem is named in one error that says what would be valid."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from circuitlab.errors import CheckpointError, UnsupportedArchitectureError
from circuitlab.loading import from_pretrained_no_processing, load, save_pretrained, supported_architectures


@pytest.fixture
def hf_copy(hf_checkpoint: Any, tmp_path: Path) -> Path:
    """A private copy of the tiny checkpoint, free to damage."""
    return Path(shutil.copytree(hf_checkpoint.folder, tmp_path / "checkpoint"))


def edit_safetensors(path: Path, edit: Any) -> None:
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def edit_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_unsupported_architecture_lists_the_supported_ones(hf_copy: Path) -> None:
    edit_config(hf_copy, architectures=["FooForCausalLM"], model_type="foo")
    with pytest.raises(UnsupportedArchitectureError) as raised:
        from_pretrained_no_processing(hf_copy)
    assert "FooForCausalLM" in str(raised.value)
    for architecture in supported_architectures():
        assert architecture in str(raised.value)


def test_model_type_picks_the_adapter_when_architectures_is_absent(hf_copy: Path) -> None:
    config = json.loads((hf_copy / "config.json").read_text())
    del config["architectures"]
    (hf_copy / "config.json").write_text(json.dumps(config))
    model = from_pretrained_no_processing(hf_copy)
    assert model.cfg.original_architecture == "GPT2LMHeadModel"


def test_a_missing_hf_tensor_is_named(hf_copy: Path) -> None:
    edit_safetensors(hf_copy / "model.safetensors", lambda tensors: tensors.pop("transformer.h.1.ln_1.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensors: (transformer\.)?h\.1\.ln_1\.weight"):
        from_pretrained_no_processing(hf_copy)


def test_a_mis_shaped_hf_tensor_is_named_with_both_shapes(hf_copy: Path) -> None:
    def widen_final_norm(tensors: dict[str, torch.Tensor]) -> None:
        tensors["transformer.ln_f.weight"] = torch.ones(33)

    edit_safetensors(hf_copy / "model.safetensors", widen_final_norm)
    with pytest.raises(CheckpointError, match=r"mis-shaped tensors: ln_final\.w \(model: \[32\], checkpoint: \[33\]\)"):
        from_pretrained_no_processing(hf_copy)


def test_config_and_weights_of_different_sizes_give_a_checkpoint_error(hf_copy: Path) -> None:
    edit_config(hf_copy, n_embd=64)
    with pytest.raises(
        CheckpointError, match=r"mis-shaped tensors: embed\.W_E \(model: \[320, 64\], checkpoint: \[320, 32\]\)"
    ):
        from_pretrained_no_processing(hf_copy)


def test_tensors_the_adapter_never_reads_are_reported_as_unexpected(hf_copy: Path) -> None:
    # A third layer's weights next to a config that says two layers.
    edit_safetensors(
        hf_copy / "model.safetensors",
        lambda tensors: tensors.update({"transformer.h.2.ln_1.weight": torch.ones(32)}),
    )
    with pytest.raises(CheckpointError, match=r"unexpected tensors: transformer\.h\.2\.ln_1\.weight"):
        from_pretrained_no_processing(hf_copy)


def test_own_format_names_every_missing_unexpected_and_mis_shaped_tensor(hf_checkpoint: Any, tmp_path: Path) -> None:
    folder = save_pretrained(from_pretrained_no_processing(hf_checkpoint.folder), tmp_path / "saved")

    def damage(tensors: dict[str, torch.Tensor]) -> None:
        del tensors["blocks.0.ln1.b"]
        tensors["blocks.0.attn.W_X"] = torch.zeros(3)
        tensors["unembed.b_U"] = torch.zeros(7)

    edit_safetensors(folder / "model.safetensors", damage)
    with pytest.raises(CheckpointError) as raised:
        load(folder)
    message = str(raised.value)
    assert "missing tensors: blocks.0.ln1.b" in message
    assert "unexpected tensors: blocks.0.attn.W_X" in message
    assert "mis-shaped tensors: unembed.b_U (model: [320], checkpoint: [7])" in message


def test_a_corrupt_safetensors_file_is_named(hf_copy: Path) -> None:
    weights = hf_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is not a readable safetensors file"):
        from_pretrained_no_processing(hf_copy)


def test_a_corrupt_pytorch_bin_file_is_named(hf_copy: Path) -> None:
    (hf_copy / "model.safetensors").unlink()
    (hf_copy / "pytorch_model.bin").write_bytes(b"\x80\x04 this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin could not be read"):
        from_pretrained_no_processing(hf_copy)


class _WritesAFile:
    """Unpickling this would create a file: proof that code in a checkpoint ran."""

    marker: Path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_with_code_in_it_is_refused_without_running_it(hf_copy: Path, tmp_path: Path) -> None:
    (hf_copy / "model.safetensors").unlink()
    payload = _WritesAFile()
    payload.marker = tmp_path / "code-ran"
    with open(hf_copy / "pytorch_model.bin", "wb") as file:
        pickle.dump({"wte.weight": payload}, file)
    with pytest.raises(CheckpointError, match="never unpickles"):
        from_pretrained_no_processing(hf_copy)
    assert not payload.marker.exists()


def test_a_folder_without_config_json_says_so(hf_copy: Path) -> None:
    (hf_copy / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"has no config\.json"):
        from_pretrained_no_processing(hf_copy)


def test_a_folder_without_weights_lists_what_it_expected(hf_copy: Path) -> None:
    (hf_copy / "model.safetensors").unlink()
    with pytest.raises(
        CheckpointError, match=r"holds no weights: expected one of model\.safetensors, .*pytorch_model\.bin"
    ):
        from_pretrained_no_processing(hf_copy)


def test_a_shard_index_naming_a_missing_shard_is_reported(hf_copy: Path) -> None:
    (hf_copy / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {"transformer.wte.weight": "model-00001-of-00002.safetensors"}}
    (hf_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"lists shards that are not in the folder: model-00001-of-00002"):
        from_pretrained_no_processing(hf_copy)
