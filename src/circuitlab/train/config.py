"""TrainingConfig: optimiser, schedule and bookkeeping settings of one training run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from circuitlab.errors import ConfigError


@dataclass
class TrainingConfig:
    """AdamW with linear warm-up and cosine decay to ``min_lr_fraction * lr``.

    Weight decay applies to weight matrices only (parameters named ``W_*``), never to biases or
    norm scales. ``loss_dtype="float64"`` computes the cross-entropy in double precision, which
    grokking needs: near-zero float32 losses round to 0 and spike (see shared/TRAINING-NOTES.md).
    """

    steps: int
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    warmup_steps: int = 0
    min_lr_fraction: float = 0.1
    grad_clip: float | None = 1.0
    eval_every: int = 100
    checkpoint_every: int = 500
    # Also keep the checkpoint of these steps for training-dynamics studies (the latest is always kept).
    keep_checkpoints: tuple[int, ...] = ()
    loss_dtype: Literal["float32", "float64"] = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ConfigError(f"warmup_steps must lie in [0, steps={self.steps}], got {self.warmup_steps}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.eval_every < 1 or self.checkpoint_every < 1:
            raise ConfigError("eval_every and checkpoint_every must be at least 1")
        if self.loss_dtype not in ("float32", "float64"):
            raise ConfigError(f"loss_dtype must be 'float32' or 'float64', got {self.loss_dtype!r}")
        self.betas = tuple(self.betas)  # type: ignore[assignment]  # JSON gives lists
        self.keep_checkpoints = tuple(sorted(self.keep_checkpoints))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training settings {unknown}; valid: {sorted(known)}")
        return cls(**values)
