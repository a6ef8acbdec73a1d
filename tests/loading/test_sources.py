"""Where from_pretrained finds a checkpoint: a folder, the Hugging Face cache, or the Hub (faked here)."""

from __future__ import annotations

import shutil
import time
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from circuitlab.errors import ModelNotFoundError
from circuitlab.loading import from_pretrained_no_processing, sources
from circuitlab.loading.sources import default_cache_dir, locate_checkpoint

SNAPSHOT_HASH = "0123456789abcdef0123456789abcdef01234567"


def fake_hf_cache(cache: Path, repo_id: str, checkpoint_folder: Path) -> Path:
    """Lay out ``checkpoint_folder``'s files as the Hugging Face cache does (``models--owner--name``)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / SNAPSHOT_HASH
    shutil.copytree(checkpoint_folder, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(SNAPSHOT_HASH)
    return snapshot


@pytest.fixture
def offline_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_folder_path_loads_and_names_the_model_after_the_folder(hf_checkpoint: Any) -> None:
    model = from_pretrained_no_processing(str(hf_checkpoint.folder))
    assert model.cfg.model_name == hf_checkpoint.folder.name
    assert model.cfg.tokenizer_name == str(hf_checkpoint.folder.resolve())
    assert model.cfg.original_architecture == "GPT2LMHeadModel"


def test_a_name_loads_from_the_hugging_face_cache(hf_checkpoint: Any, offline_empty_cache: Path) -> None:
    fake_hf_cache(offline_empty_cache, "gpt2", hf_checkpoint.folder)
    model = from_pretrained_no_processing("gpt2")
    assert same_weights(model, from_pretrained_no_processing(hf_checkpoint.folder))
    assert (model.cfg.model_name, model.cfg.tokenizer_name) == ("gpt2", "gpt2")


def test_an_alias_finds_the_model_cached_under_its_hub_organisation(
    hf_checkpoint: Any, offline_empty_cache: Path
) -> None:
    fake_hf_cache(offline_empty_cache, "openai-community/gpt2", hf_checkpoint.folder)
    model = from_pretrained_no_processing("gpt2-small")
    assert model.cfg.model_name == "gpt2"
    assert model.cfg.tokenizer_name == "openai-community/gpt2"


def test_cache_dir_argument_wins_over_the_environment(
    hf_checkpoint: Any, offline_empty_cache: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "other-cache"
    fake_hf_cache(elsewhere, "someone/tiny-gpt2", hf_checkpoint.folder)
    model = from_pretrained_no_processing("someone/tiny-gpt2", cache_dir=elsewhere)
    assert model.cfg.model_name == "someone/tiny-gpt2"


def test_hf_home_locates_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "hub"


def test_offline_unknown_name_fails_fast_with_instructions(offline_empty_cache: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as raised:
        from_pretrained_no_processing("gpt2-medium")
    assert time.perf_counter() - start < 2.0
    message = str(raised.value)
    assert "not in the local Hugging Face cache" in message
    assert str(offline_empty_cache) in message
    assert "hf download gpt2-medium" in message
    assert "HF_HUB_OFFLINE" in message


def test_local_files_only_keeps_off_the_network(offline_empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(sources, "snapshot_download", _no_network(sources.snapshot_download))
    with pytest.raises(ModelNotFoundError, match="local_files_only=True"):
        from_pretrained_no_processing("someone/unknown-model", local_files_only=True)


def test_network_failure_gives_model_not_found_with_instructions(
    offline_empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(sources, "snapshot_download", _no_network(sources.snapshot_download))
    with pytest.raises(ModelNotFoundError) as raised:
        from_pretrained_no_processing("distilgpt2")
    assert "could not be downloaded (Name or service not known)" in str(raised.value)
    assert "hf download distilgpt2" in str(raised.value)


def test_a_missing_folder_path_is_not_sent_to_the_hub(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="there is no folder"):
        from_pretrained_no_processing(str(tmp_path / "no" / "such" / "folder"))


def test_download_fetches_safetensors_config_and_tokenizer_only(
    hf_checkpoint: Any, offline_empty_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub_repo = tmp_path / "hub-repo"
    shutil.copytree(hf_checkpoint.folder, hub_repo)
    torch.save(load_file(hub_repo / "model.safetensors"), hub_repo / "pytorch_model.bin")
    (hub_repo / "flax_model.msgpack").write_bytes(b"not wanted")
    requests = _fake_hub(monkeypatch, hub_repo, tmp_path / "downloads")

    model = from_pretrained_no_processing("someone/tiny-gpt2", local_files_only=False)
    assert len(requests) == 1
    downloaded = {path.name for path in (tmp_path / "downloads").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= downloaded
    assert not downloaded & {"pytorch_model.bin", "flax_model.msgpack"}
    assert model.tokenizer is not None


def test_download_falls_back_to_pickled_weights_without_safetensors(
    hf_checkpoint: Any, offline_empty_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub_repo = tmp_path / "hub-repo"
    shutil.copytree(hf_checkpoint.folder, hub_repo)
    torch.save(load_file(hub_repo / "model.safetensors"), hub_repo / "pytorch_model.bin")
    (hub_repo / "model.safetensors").unlink()
    requests = _fake_hub(monkeypatch, hub_repo, tmp_path / "downloads")

    model = from_pretrained_no_processing("someone/tiny-gpt2", local_files_only=False)
    assert len(requests) == 2
    assert any(fnmatch("pytorch_model.bin", pattern) for pattern in requests[1])
    assert same_weights(model, from_pretrained_no_processing(hf_checkpoint.folder))


def test_locate_checkpoint_rejects_a_file_path(hf_checkpoint: Any) -> None:
    with pytest.raises(ModelNotFoundError, match="is a file"):
        locate_checkpoint(hf_checkpoint.folder / "config.json")


def _no_network(real_snapshot_download: Any) -> Any:
    """``snapshot_download`` that serves the cache but fails like a machine without DNS."""

    def snapshot_download(repo_id: str, **kwargs: Any) -> str:
        if kwargs.get("local_files_only"):
            return real_snapshot_download(repo_id, **kwargs)
        raise OSError("Name or service not known")

    return snapshot_download


def _fake_hub(monkeypatch: pytest.MonkeyPatch, hub_repo: Path, downloads: Path) -> list[list[str]]:
    """Make ``snapshot_download`` copy the files of ``hub_repo`` matching ``allow_patterns``; returns the requests."""
    requests: list[list[str]] = []
    real_snapshot_download = sources.snapshot_download

    def snapshot_download(repo_id: str, **kwargs: Any) -> str:
        if kwargs.get("local_files_only"):
            return real_snapshot_download(repo_id, **kwargs)
        patterns = list(kwargs["allow_patterns"])
        requests.append(patterns)
        downloads.mkdir(exist_ok=True)
        for path in hub_repo.iterdir():
            if any(fnmatch(path.name, pattern) for pattern in patterns):
                shutil.copy(path, downloads / path.name)
        return str(downloads)

    monkeypatch.setattr(sources, "snapshot_download", snapshot_download)
    return requests
