"""Reading a checkpoint's config and weights from a folder, and checking them against a model.

Weights come from safetensors files, or from ``pytorch_model.bin`` files read with
``torch.load(weights_only=True)``, which refuses anything but tensors: a checkpoint can never run code.
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from circuitlab.errors import CheckpointError
from circuitlab.loading.file_names import PICKLE_FILES, SAFETENSORS_FILES, WEIGHT_FILES

# Long lists of names are cut to this many per kind of problem in an error message.
_NAMES_SHOWN = 20


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint folder."""
    path = folder / "config.json"
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise CheckpointError(
            f"{folder} has no config.json, so there is no way to tell which model it holds "
            f"(files present: {present or 'none'})"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} should hold a JSON object, but holds a {type(config).__name__}")
    return config


def weight_files(folder: Path) -> list[Path]:
    """The files holding a checkpoint's weights: one file, or the shards its index lists."""
    for single, index in (SAFETENSORS_FILES, PICKLE_FILES):
        if (folder / single).is_file():
            return [folder / single]
        if (folder / index).is_file():
            return _shards(folder / index)
    present = sorted(p.name for p in folder.iterdir())
    raise CheckpointError(
        f"{folder} holds no weights: expected one of {', '.join(WEIGHT_FILES)} (files present: {present})"
    )


def read_weights(folder: Path) -> dict[str, Tensor]:
    """Every tensor of the checkpoint in ``folder``, on the CPU, by its name in the checkpoint."""
    state: dict[str, Tensor] = {}
    for path in weight_files(folder):
        tensors = read_tensor_file(path)
        repeated = sorted(set(tensors) & set(state))
        if repeated:
            raise CheckpointError(f"{path} repeats tensors that an earlier shard already holds: {_some(repeated)}")
        state.update(tensors)
    return state


def read_tensor_file(path: Path) -> dict[str, Tensor]:
    """The tensors in one ``.safetensors`` or ``.bin`` file; a damaged file gives ``CheckpointError``."""
    if path.suffix == ".safetensors":
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({err}); the file may be truncated or damaged: "
                "delete it and download or save it again"
            ) from None
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of files it is about to refuse anyway.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint of plain tensors ({first_line}). The file may be "
            "damaged, or hold Python objects, which circuitlab never unpickles; convert it to safetensors"
        ) from None
    if not isinstance(loaded, Mapping) or not all(
        isinstance(name, str) and isinstance(tensor, Tensor) for name, tensor in loaded.items()
    ):
        raise CheckpointError(f"{path} does not hold a flat mapping from tensor names to tensors")
    return dict(loaded)


@dataclass
class CheckpointProblems:
    """Everything wrong between a checkpoint and the model it should fill, collected to report at once."""

    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[str] = field(default_factory=list)

    def as_error(self) -> CheckpointError:
        parts = [
            f"{label}: {_some(names)}"
            for label, names in (
                ("missing tensors", self.missing),
                ("unexpected tensors", self.unexpected),
                ("mis-shaped tensors", self.mis_shaped),
            )
            if names
        ]
        return CheckpointError(f"the checkpoint {self.source} does not fit the model; " + "; ".join(parts))

    def raise_if_any(self) -> None:
        if self.missing or self.unexpected or self.mis_shaped:
            raise self.as_error()


def compare_with_model(state: Mapping[str, Tensor], model: nn.Module, problems: CheckpointProblems) -> None:
    """Record in ``problems`` the tensors ``state`` lacks, those ``model`` lacks, and those of other shapes."""
    expected = model.state_dict()  # in the model's order: embeddings first, then block by block
    problems.missing += [name for name in expected if name not in state]
    problems.unexpected += sorted(set(state) - set(expected))
    for name in expected:
        if name not in state:
            continue
        tensor = state[name]
        if tensor.shape != expected[name].shape:
            problems.mis_shaped.append(
                f"{name} (model: {list(expected[name].shape)}, checkpoint: {list(tensor.shape)})"
            )
        elif not tensor.is_floating_point():
            problems.mis_shaped.append(f"{name} (checkpoint dtype {tensor.dtype}, expected floating point)")


def copy_into_model(state: Mapping[str, Tensor], model: nn.Module, problems: CheckpointProblems) -> None:
    """Check ``state`` against ``model``, raise one ``CheckpointError`` naming every problem, else copy it in.

    ``problems`` may already hold what an adapter found. The tensors are copied into the existing
    parameters, which keeps their dtype, device and memory layout (the per-head W_Q, W_K, W_V are
    strided views, see ``components/affine.py``).
    """
    compare_with_model(state, model, problems)
    problems.raise_if_any()
    with torch.no_grad():
        for name, target in model.state_dict(keep_vars=True).items():
            target.copy_(state[name])


def _shards(index_path: Path) -> list[Path]:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
        names = sorted(set(weight_map.values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(
            f"{index_path} is not a valid shard index (a JSON object with a 'weight_map'): {err}"
        ) from None
    missing = [name for name in names if not (index_path.parent / name).is_file()]
    if missing:
        raise CheckpointError(f"{index_path} lists shards that are not in the folder: {_some(missing)}")
    return [index_path.parent / name for name in names]


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown if len(names) <= _NAMES_SHOWN else f"{shown} and {len(names) - _NAMES_SHOWN} more"
