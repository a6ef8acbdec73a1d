"""Learning-rate schedule: linear warm-up, then cosine decay."""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_fraction: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): 0 -> 1 over the warm-up, then
    cosine from 1 down to ``min_fraction`` at ``total_steps``."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
