"""Techniques as pure functions: ``(model, inputs, ...) -> result`` with labels for the viz layer."""

from circuitlab.analysis.heads import HeadScores, induction_scores, offset_scores, previous_token_scores

__all__ = ["HeadScores", "induction_scores", "offset_scores", "previous_token_scores"]
