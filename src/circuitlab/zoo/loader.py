"""Loading a zoo model (or one checkpoint of its series) after checking its files' hashes."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from circuitlab.data.tokenizer import load_tokenizer
from circuitlab.errors import CheckpointError, InputError, ModelNotFoundError
from circuitlab.loading import load as load_folder
from circuitlab.loading.checkpoint import CheckpointProblems, copy_into_model, read_config, read_tensor_file
from circuitlab.loading.own_format import FORMAT_MARKER, FORMAT_VERSION
from circuitlab.model import HookedTransformer, TransformerConfig
from circuitlab.zoo.catalogue import Root, card, model_names, model_not_found
from circuitlab.zoo.integrity import verify_files
from circuitlab.zoo.layout import (
    CONFIG_FILE,
    TOKENIZERS_FOLDER,
    WEIGHTS_FILE,
    checkpoint_file,
    entry_path,
    is_valid_name,
    tokenizer_folder,
    zoo_root,
)
from circuitlab.zoo.model_card import ModelCard


def load(
    name: str,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    checkpoint: int | None = None,
    root: Root = None,
) -> HookedTransformer:
    """The zoo model ``name`` with its tokenizer, in ``dtype`` (float32 unless asked, whatever it was stored in).

    ``checkpoint=N`` loads the weights saved at training step ``N`` of the model's series instead of
    the final ones (see ``checkpoint_steps``). Every file read is first checked against the card's
    sha256; a missing or damaged file raises ``CheckpointError``.
    """
    folder = zoo_root(root)
    model_card = card(name, root)
    weights = WEIGHTS_FILE if checkpoint is None else _checkpoint_file(model_card, checkpoint)
    needed = [entry_path(name, CONFIG_FILE), entry_path(name, weights), *_tokenizer_files(model_card)]
    verify_files(folder, model_card, needed)

    cfg = _read_config(folder / name)
    tokenizer = load_tokenizer(tokenizer_folder(folder, model_card.tokenizer)) if model_card.tokenizer else None
    model = HookedTransformer(cfg, tokenizer=tokenizer, init_weights=False)
    weights_path = folder / name / weights
    copy_into_model(read_tensor_file(weights_path), model, CheckpointProblems(str(weights_path)))
    return model.to(device=device, dtype=dtype)


def load_name_or_path(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    checkpoint: int | None = None,
    root: Root = None,
) -> HookedTransformer:
    """A zoo model by name, or a model that ``save_pretrained`` wrote to a folder.

    A plain string that names a zoo model loads the zoo model (float32 unless ``dtype`` says otherwise);
    anything else is a folder, loaded by ``circuitlab.loading.load`` (in the dtype it was saved in unless
    ``dtype`` says otherwise). Write ``./name`` or pass a ``Path`` for a folder that shares a zoo model's name.
    """
    if isinstance(name_or_path, str) and is_valid_name(name_or_path) and name_or_path in model_names(root):
        return load(name_or_path, dtype=dtype or torch.float32, device=device, checkpoint=checkpoint, root=root)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if checkpoint is not None:
            raise InputError(
                f"checkpoint={checkpoint} picks a step of a zoo model's checkpoint series, but {str(path)!r} is a "
                "folder; load the folder without checkpoint=, or name a zoo model"
            )
        return load_folder(path, device=device, dtype=dtype)
    error = model_not_found(name_or_path, model_names(root), zoo_root(root))
    raise ModelNotFoundError(f"{name_or_path!r} is not a folder, and {error}") from None


def _checkpoint_file(model_card: ModelCard, step: int) -> str:
    steps = model_card.checkpoint_steps
    if not isinstance(step, int) or isinstance(step, bool):
        raise InputError(f"checkpoint= takes a training step (an integer), got {step!r}; steps saved: {steps}")
    if step in steps:
        return checkpoint_file(step)
    if not steps:
        raise ModelNotFoundError(f"zoo model {model_card.name!r} has no checkpoint series; load it without checkpoint=")
    nearest = min(steps, key=lambda saved: abs(saved - step))
    shown = ", ".join(str(s) for s in steps)
    raise ModelNotFoundError(
        f"zoo model {model_card.name!r} has no checkpoint at step {step!r} (nearest: {nearest}); steps saved: {shown}"
    )


def _tokenizer_files(model_card: ModelCard) -> list[str]:
    if model_card.tokenizer is None:
        return []
    prefix = f"{TOKENIZERS_FOLDER}/{model_card.tokenizer}/"
    files = [path for path in model_card.files if path.startswith(prefix)]
    if not files:
        raise CheckpointError(
            f"zoo model {model_card.name!r} names the tokenizer {model_card.tokenizer!r}, but its card lists none of "
            "the tokenizer's files; republish the model"
        )
    return files


def _read_config(folder: Path) -> TransformerConfig:
    values = read_config(folder)
    marker = values.pop("format", None)
    version = values.pop("format_version", None)
    if marker != FORMAT_MARKER or not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{folder / CONFIG_FILE} is not a circuitlab config of format_version <= {FORMAT_VERSION} "
            f"(format: {marker!r}, format_version: {version!r}); upgrade circuitlab or republish the model"
        )
    return TransformerConfig.from_dict(values)
