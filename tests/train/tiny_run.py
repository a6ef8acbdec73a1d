"""A tiny deterministic training run, importable by tests and runnable as a script (for the kill -9 test).

python tiny_run.py OUT_DIR STEPS SECONDS_PER_STEP
"""

from __future__ import annotations

import sys
import time

import torch

from circuitlab import HookedTransformer, TransformerConfig
from circuitlab.train import TrainingConfig, train

MODEL_CONFIG = dict(n_layers=1, d_model=32, n_ctx=16, d_vocab=40, n_heads=2, attn_only=True, seed=0)


def batch_for_step(step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(10_000 + step)
    starts = torch.randint(0, 40, (8, 1), generator=generator)
    return (starts + torch.arange(16)) % 40  # each token is its predecessor + 1: a bigram to learn


def training_config(steps: int) -> TrainingConfig:
    return TrainingConfig(steps=steps, lr=1e-2, warmup_steps=5, checkpoint_every=4, eval_every=10,
                          keep_checkpoints=(8,))  # fmt: skip


def run(out_dir: str | None, steps: int, stop_after: int | None = None, seconds_per_step: float = 0.0):
    def batches(step: int) -> torch.Tensor:
        time.sleep(seconds_per_step)  # lets a test kill the process between two checkpoints
        return batch_for_step(step)

    model = HookedTransformer(TransformerConfig(**MODEL_CONFIG))
    return train(model, batches, training_config(steps), out_dir, progress=False, stop_after=stop_after,
                 eval_fn=lambda m: {"loss": m(batch_for_step(-1), return_type="loss").item()})  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(sys.argv[1], int(sys.argv[2]), seconds_per_step=float(sys.argv[3]))
