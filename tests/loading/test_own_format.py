"""circuitlab's own format: save_pretrained then load gives back the same model, and saving is all or nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from circuitlab import HookedTransformer, TransformerConfig
from circuitlab.errors import CheckpointError, UnsupportedArchitectureError
from circuitlab.loading import from_pretrained, from_pretrained_no_processing, load, own_format, save_pretrained


@pytest.fixture(scope="module")
def processed(hf_checkpoint: Any) -> HookedTransformer:
    return from_pretrained(hf_checkpoint.folder)


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 320, (2, 16), generator=torch.Generator().manual_seed(0))


def leftovers(parent: Path) -> list[str]:
    """Hidden staging or retired folders that a save left behind."""
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("."))


@pytest.mark.parametrize("processing", ["processed", "unprocessed"])
def test_round_trip_gives_identical_logits(
    processing: str, hf_checkpoint: Any, tokens: torch.Tensor, tmp_path: Path
) -> None:
    loader = from_pretrained if processing == "processed" else from_pretrained_no_processing
    model = loader(hf_checkpoint.folder)
    save_pretrained(model, tmp_path / "saved")
    loaded = load(tmp_path / "saved")
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))
    assert loaded.cfg == model.cfg


def test_round_trip_keeps_hook_names(processed: HookedTransformer, tmp_path: Path) -> None:
    loaded = load(save_pretrained(processed, tmp_path / "saved"))
    assert sorted(loaded.hook_dict) == sorted(processed.hook_dict)


def test_round_trip_keeps_the_tokenizer(processed: HookedTransformer, tmp_path: Path) -> None:
    loaded = load(save_pretrained(processed, tmp_path / "saved"))
    assert loaded.to_str_tokens("hello world") == processed.to_str_tokens("hello world")
    assert torch.equal(loaded.to_tokens("When Mary and John"), processed.to_tokens("When Mary and John"))


def test_round_trip_keeps_the_per_head_layout(processed: HookedTransformer, tmp_path: Path) -> None:
    loaded = load(save_pretrained(processed, tmp_path / "saved"))
    assert loaded.blocks[0].attn.W_Q.stride() == processed.blocks[0].attn.W_Q.stride()


def test_a_model_without_tokenizer_round_trips_without_one(tmp_path: Path) -> None:
    model = HookedTransformer(TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=20, n_heads=2, seed=0))
    loaded = load(save_pretrained(model, tmp_path / "saved"))
    assert loaded.tokenizer is None
    assert torch.equal(loaded.W_E, model.W_E)


def test_load_keeps_the_saved_dtype_unless_asked(tmp_path: Path) -> None:
    model = HookedTransformer(TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=20, n_heads=2, seed=0))
    save_pretrained(model.to(torch.bfloat16), tmp_path / "saved")
    assert load(tmp_path / "saved").dtype == torch.bfloat16
    assert load(tmp_path / "saved", dtype=torch.float32).dtype == torch.float32


def test_config_json_is_marked_as_circuitlab_format(processed: HookedTransformer, tmp_path: Path) -> None:
    folder = save_pretrained(processed, tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "circuitlab"
    assert config["format_version"] == own_format.FORMAT_VERSION
    assert config["normalization_type"] == "LNPre"


def test_hooked_transformer_methods_save_and_load(hf_checkpoint: Any, tokens: torch.Tensor, tmp_path: Path) -> None:
    model = HookedTransformer.from_pretrained_no_processing(str(hf_checkpoint.folder))
    model.save_pretrained(str(tmp_path / "saved"))
    with torch.no_grad():
        assert torch.equal(load(tmp_path / "saved")(tokens), model(tokens))


def test_saving_over_a_saved_model_replaces_it(processed: HookedTransformer, tmp_path: Path) -> None:
    small = HookedTransformer(TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=20, n_heads=2, seed=0))
    save_pretrained(small, tmp_path / "saved")
    save_pretrained(processed, tmp_path / "saved")
    assert load(tmp_path / "saved").cfg == processed.cfg
    assert leftovers(tmp_path) == []


def test_a_save_that_fails_midway_leaves_the_old_model_and_no_temporary_folder(
    processed: HookedTransformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = HookedTransformer(TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=20, n_heads=2, seed=0))
    save_pretrained(small, tmp_path / "saved")

    def disk_full(tensors: Any, path: Path, metadata: Any = None) -> None:
        Path(path).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(own_format, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_pretrained(processed, tmp_path / "saved")
    assert torch.equal(load(tmp_path / "saved").W_E, small.W_E)
    assert leftovers(tmp_path) == []


def test_a_save_never_replaces_a_folder_that_is_not_a_saved_model(processed: HookedTransformer, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a circuitlab model"):
        save_pretrained(processed, tmp_path / "notes")
    assert (tmp_path / "notes" / "thesis.txt").read_text() == "precious"


def test_load_of_a_hugging_face_folder_points_to_from_pretrained(hf_checkpoint: Any) -> None:
    with pytest.raises(CheckpointError, match="from_pretrained"):
        load(hf_checkpoint.folder)


def test_from_pretrained_of_a_saved_folder_points_to_load(processed: HookedTransformer, tmp_path: Path) -> None:
    folder = save_pretrained(processed, tmp_path / "saved")
    with pytest.raises(UnsupportedArchitectureError, match=r"circuitlab\.loading\.load"):
        from_pretrained(folder)


def test_a_newer_format_version_asks_for_a_newer_circuitlab(processed: HookedTransformer, tmp_path: Path) -> None:
    folder = save_pretrained(processed, tmp_path / "saved")
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = own_format.FORMAT_VERSION + 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="upgrade circuitlab"):
        load(folder)
