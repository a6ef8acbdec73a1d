"""Techniques as pure functions: ``(model, inputs, ...) -> result`` with labels for the viz layer."""

from circuitlab.analysis.ablation import AblationResult, ablate, parse_component
from circuitlab.analysis.heads import HeadScores, induction_scores, offset_scores, previous_token_scores
from circuitlab.analysis.patching import PatchingResult, activation_patching, activation_patching_loop
from circuitlab.analysis.results import LabelledResult

__all__ = [
    "AblationResult",
    "HeadScores",
    "LabelledResult",
    "PatchingResult",
    "ablate",
    "activation_patching",
    "activation_patching_loop",
    "induction_scores",
    "offset_scores",
    "parse_component",
    "previous_token_scores",
]
