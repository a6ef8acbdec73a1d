"""Synthetic tasks with known answers: induction, modular addition, list reversal and sorting, IOI."""

from circuitlab.data.synthetic.induction import (
    RepeatedSpanBatch,
    random_tokens,
    repeated_random_tokens,
    repeated_span_tokens,
)
from circuitlab.data.synthetic.ioi import NAMES, TEMPLATES, IOIPrompts, ioi_prompts, single_token_names
from circuitlab.data.synthetic.list_tasks import ListTaskBatch, list_reversal_batch, list_sorting_batch
from circuitlab.data.synthetic.modular_arithmetic import ModularAdditionData, modular_addition_dataset

__all__ = [
    "NAMES",
    "TEMPLATES",
    "IOIPrompts",
    "ListTaskBatch",
    "ModularAdditionData",
    "RepeatedSpanBatch",
    "ioi_prompts",
    "list_reversal_batch",
    "list_sorting_batch",
    "modular_addition_dataset",
    "random_tokens",
    "repeated_random_tokens",
    "repeated_span_tokens",
    "single_token_names",
]
