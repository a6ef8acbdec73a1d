"""Finding a checkpoint's files: a local folder, the Hugging Face cache, or a download from the Hub.

The cache and the Hub are reached through ``huggingface_hub``. Environment variables are read when a
model is looked up, not when ``huggingface_hub`` was imported, so a notebook (or a test) can set
``HF_HUB_OFFLINE`` or ``HF_HUB_CACHE`` at any time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.utils import (
    GatedRepoError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from circuitlab.errors import ModelNotFoundError
from circuitlab.loading.file_names import CONFIG_FILE, SAFETENSORS_FILES, TOKENIZER_FILES, WEIGHT_FILES
from circuitlab.loading.known_models import find_known_model

# Sharded checkpoints name their shards model-00001-of-00004.safetensors and so on.
_SAFETENSORS_PATTERNS = ["model*.safetensors", "model.safetensors.index.json"]
_PICKLE_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
_TRUE_VALUES = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class CheckpointSource:
    """Where a checkpoint's files are, and what to call the model."""

    folder: Path
    model_name: str
    """The known name (``"gpt2"``), the Hub repository, or the folder's name."""
    tokenizer_name: str
    """What ``AutoTokenizer.from_pretrained`` would be given to find the same tokenizer."""


def locate_checkpoint(
    name_or_path: str | os.PathLike[str],
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
) -> CheckpointSource:
    """The folder holding ``name_or_path``'s config and weights, downloading them only if needed.

    Looks in order at: a local folder of that name; the Hugging Face cache (``cache_dir``, else
    ``HF_HUB_CACHE`` / ``HF_HOME``); the Hub, unless ``local_files_only`` (default: the
    ``HF_HUB_OFFLINE`` environment variable) says not to. Raises ``ModelNotFoundError`` with the
    steps to get the files when none of these has them.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        return CheckpointSource(folder=resolved, model_name=resolved.name, tokenizer_name=str(resolved))
    if path.is_file():
        raise ModelNotFoundError(f"{text!r} is a file; pass the folder that holds it (and its config.json) instead")
    if _looks_like_a_path(text):
        raise ModelNotFoundError(f"there is no folder {str(path)!r}; pass the path of a folder holding config.json")

    known = find_known_model(text)
    repo_ids = known.repo_ids if known else (text,)
    model_name = known.name if known else text
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    for repo_id in repo_ids:
        folder = _cached_snapshot(repo_id, revision, cache)
        if folder is not None:
            return CheckpointSource(folder=folder, model_name=model_name, tokenizer_name=repo_id)

    offline = is_offline() if local_files_only is None else local_files_only
    if offline:
        why = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set"
        raise ModelNotFoundError(
            f"{text!r} is not in the local Hugging Face cache ({cache}) and downloads are switched off ({why}). "
            + _how_to_get_it(repo_ids[0])
        )
    folder = _download(repo_ids[0], text, revision, cache)
    return CheckpointSource(folder=folder, model_name=model_name, tokenizer_name=repo_ids[0])


def default_cache_dir() -> Path:
    """The Hugging Face Hub cache that ``huggingface_hub`` would use, from the environment as it is now."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache_home = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache_home).expanduser() / "huggingface" / "hub"


def is_offline() -> bool:
    """Whether the environment asks for no network access (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE_VALUES for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in WEIGHT_FILES)


def _looks_like_a_path(text: str) -> bool:
    # Hub repositories are "name" or "owner/name"; anything else that was meant as a folder should
    # say that it does not exist rather than be sent to the Hub.
    return text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1


def _cached_snapshot(repo_id: str, revision: str | None, cache: Path) -> Path | None:
    """The cached snapshot of ``repo_id`` if it holds a config and weights; never touches the network."""
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None
    # A cache can hold a partial snapshot (say, config.json fetched on its own by another tool).
    if (folder / CONFIG_FILE).is_file() and has_weights(folder):
        return folder
    return None


def _download(repo_id: str, requested: str, revision: str | None, cache: Path) -> Path:
    wanted = [CONFIG_FILE, *TOKENIZER_FILES]
    try:
        folder = Path(
            snapshot_download(
                repo_id, revision=revision, cache_dir=cache, allow_patterns=wanted + _SAFETENSORS_PATTERNS
            )
        )
        if not any((folder / name).is_file() for name in SAFETENSORS_FILES):
            # Older repositories only have pickled weights; they are read with weights_only=True.
            folder = Path(
                snapshot_download(repo_id, revision=revision, cache_dir=cache, allow_patterns=wanted + _PICKLE_PATTERNS)
            )
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{repo_id!r} is a gated repository on the Hugging Face Hub: accept its terms on the model's page, "
            "then log in (`huggingface-cli login`) or set HF_TOKEN"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"{requested!r} is neither a local folder nor a model on the Hugging Face Hub (or it is private: "
            "log in with `huggingface-cli login`). Check the spelling; known names include "
            "gpt2, gpt2-medium, gpt2-large, gpt2-xl and distilgpt2"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{repo_id!r} on the Hugging Face Hub has no revision {revision!r}") from None
    except HFValidationError as err:
        raise ModelNotFoundError(
            f"{requested!r} is neither a local folder nor a valid Hugging Face repository name ({err})"
        ) from None
    except Exception as err:  # network failures surface as many types (httpx, OSError, hub errors)
        reason = str(err).strip().splitlines()[0].removeprefix("Got: ") if str(err).strip() else type(err).__name__
        raise ModelNotFoundError(
            f"{requested!r} is not in the local Hugging Face cache ({cache}) and could not be downloaded "
            f"({reason}). " + _how_to_get_it(repo_id)
        ) from err
    if not (folder / CONFIG_FILE).is_file() or not has_weights(folder):
        raise ModelNotFoundError(
            f"the Hugging Face repository {repo_id!r} has no {CONFIG_FILE} with safetensors or pytorch_model.bin "
            "weights next to it, so it is not a transformers checkpoint circuitlab can read"
        )
    return folder


def _how_to_get_it(repo_id: str) -> str:
    folder = repo_id.rsplit("/", 1)[-1]
    return (
        "To use it without internet access: on a machine with internet run "
        f"`hf download {repo_id} --include '*.json' --include '*.txt' --include 'model*.safetensors' "
        f"--local-dir {folder}` (older huggingface_hub: `huggingface-cli download`), copy that folder here, "
        f"and pass its path: circuitlab.from_pretrained('/path/to/{folder}'). Or copy a whole Hugging Face "
        "cache and point HF_HUB_CACHE at it."
    )
