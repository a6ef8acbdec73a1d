"""circuitlab's own checkpoint format: a folder that ``save_pretrained`` writes and ``load`` reads back.

The folder holds ``model.safetensors`` (circuitlab's parameter names, each tensor contiguous),
``config.json`` (``TransformerConfig.to_dict()`` plus ``"format": "circuitlab"`` and
``"format_version"``) and, if the model has one, the tokenizer's files. Weight processing is part of
the saved config (``normalization_type``, ``extra["processing"]``), so a processed model loads as
processed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import save_file

from circuitlab.errors import CheckpointError
from circuitlab.loading.checkpoint import CheckpointProblems, copy_into_model, read_config, read_tensor_file
from circuitlab.loading.tokenizer_files import load_tokenizer
from circuitlab.model import HookedTransformer, TransformerConfig

FORMAT_MARKER = "circuitlab"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"


def save_pretrained(model: HookedTransformer, directory: str | os.PathLike[str]) -> Path:
    """Write ``model`` (weights, config, tokenizer) to ``directory``, all or nothing; returns the folder.

    Everything is written to a hidden folder next to ``directory`` and renamed into place, so an
    interrupted save leaves no half-written model. An existing ``directory`` is replaced only if it
    is empty or holds a circuitlab model; anything else raises ``FileExistsError``.
    """
    target = Path(directory).expanduser().absolute()
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.saving-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        _write_model(model, staging)
        move_folders_into_place([(staging, target)])
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load(
    directory: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> HookedTransformer:
    """Read a model that ``save_pretrained`` wrote, with its tokenizer if it was saved with one.

    ``dtype`` defaults to the dtype the weights were saved in.
    """
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"there is no folder {str(folder)!r} to load a circuitlab model from")
    values = read_config(folder)
    if values.pop("format", None) != FORMAT_MARKER:
        raise CheckpointError(
            f"{folder} was not written by circuitlab's save_pretrained (its config.json has no "
            f'"format": "{FORMAT_MARKER}"); for a Hugging Face checkpoint use circuitlab.loading.from_pretrained'
        )
    version = values.pop("format_version", None)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} has format_version {version!r}; this circuitlab reads versions up to {FORMAT_VERSION}: "
            "upgrade circuitlab to load it"
        )
    cfg = TransformerConfig.from_dict(values)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{folder} has a circuitlab config.json but no {WEIGHTS_FILE}")
    state = read_tensor_file(weights_path)
    model = HookedTransformer(cfg, tokenizer=load_tokenizer(folder), init_weights=False)
    copy_into_model(state, model, CheckpointProblems(str(weights_path)))
    saved_dtype = state["embed.W_E"].dtype
    return model.to(device=device, dtype=dtype or saved_dtype)


def is_circuitlab_folder(folder: Path) -> bool:
    try:
        return read_config(folder).get("format") == FORMAT_MARKER
    except CheckpointError:
        return False


def _write_model(model: HookedTransformer, folder: Path) -> None:
    # safetensors stores plain contiguous tensors; the strided per-head layout is rebuilt on load by copy_.
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt", "producer": FORMAT_MARKER})
    # safetensors writes owner-only files (0600); a saved model is meant to be shared like any other file.
    os.chmod(folder / WEIGHTS_FILE, 0o644)
    config = {**model.cfg.to_dict(), "format": FORMAT_MARKER, "format_version": FORMAT_VERSION}
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(folder))


def _check_replaceable(target: Path) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder; choose another path to save the model to")
    if any(target.iterdir()) and not is_circuitlab_folder(target):
        raise FileExistsError(
            f"{target} already holds files that are not a circuitlab model; "
            "choose an empty or new folder (save_pretrained replaces only a previously saved model)"
        )


def move_folders_into_place(moves: list[tuple[Path, Path]]) -> None:
    """Rename each staging folder onto its target, all or nothing.

    An existing target is renamed away first and deleted only once every move succeeded; if one
    rename fails, every earlier target is put back as it was.
    """
    done: list[tuple[Path, Path | None]] = []
    try:
        for staging, target in moves:
            retired = None
            if target.exists():
                retired = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:12]}"
                os.replace(target, retired)
            done.append((target, retired))
            os.replace(staging, target)
    except BaseException:
        for target, retired in reversed(done):
            shutil.rmtree(target, ignore_errors=True)
            if retired is not None:
                os.replace(retired, target)
        raise
    for _, retired in done:
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
