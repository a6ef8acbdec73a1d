"""Training circuitlab models: config, loop, checkpoints and schedules."""

from circuitlab.train.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from circuitlab.train.config import TrainingConfig
from circuitlab.train.loop import TrainResult, make_optimizer, next_token_loss, read_metrics, train
from circuitlab.train.schedule import warmup_cosine

__all__ = [
    "TrainResult",
    "TrainingConfig",
    "TrainingState",
    "load_checkpoint",
    "make_optimizer",
    "next_token_loss",
    "read_metrics",
    "save_checkpoint",
    "train",
    "warmup_cosine",
]
