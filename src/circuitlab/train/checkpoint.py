"""Training checkpoints: everything a run needs to continue exactly where it stopped, written atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuitlab.data.files import atomic_output
from circuitlab.errors import CheckpointError

LATEST = "checkpoint.pt"


@dataclass
class TrainingState:
    """Model and optimiser state after ``step`` completed steps, and the CPU random state then."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng_state: torch.Tensor
    extra: dict[str, Any]


def save_checkpoint(path: Path, state: TrainingState) -> None:
    """Write ``state`` to ``path`` through a temporary file and a rename: a crash leaves the old file."""
    payload = {
        "step": state.step,
        "model": {name: tensor.detach().clone() for name, tensor in state.model.items()},
        "optimizer": state.optimizer,
        "rng_state": state.rng_state,
        "extra": state.extra,
    }
    with atomic_output(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and plain data only: never unpickles code)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(f"checkpoint {path} is damaged or not a circuitlab checkpoint: {error}") from None
    missing = {"step", "model", "optimizer", "rng_state", "extra"} - set(payload)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}")
    return TrainingState(**payload)
