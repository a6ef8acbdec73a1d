"""Exceptions that circuitlab raises for bad input.

Each message says what was wrong and what would be valid. Every class also derives from the
built-in exception a caller would naturally catch (``ValueError``, ``KeyError``, ...).
"""

from __future__ import annotations


class CircuitlabError(Exception):
    """Base class for every error circuitlab raises on purpose."""


class ConfigError(CircuitlabError, ValueError):
    """A model configuration whose sizes or options do not fit together."""


class InputError(CircuitlabError, ValueError):
    """Tokens or text that the model cannot take (too long, ids outside the vocabulary, ...)."""


class HookNameError(CircuitlabError, ValueError):
    """A hook name that the model does not have."""


class HookShapeError(CircuitlabError, ValueError):
    """A hook returned a tensor whose shape differs from the activation it replaces."""


class HookNotFiredError(CircuitlabError, RuntimeError):
    """A hook was asked for but the forward (or backward) pass never reached it."""


class CacheKeyError(CircuitlabError, KeyError):
    """An activation that is not in an ActivationCache (a ``KeyError``, so dict-style code still works)."""

    def __str__(self) -> str:  # KeyError would quote the message and escape its newlines
        return str(self.args[0]) if self.args else ""


class CheckpointError(CircuitlabError, ValueError):
    """A checkpoint whose tensors are missing, unexpected or mis-shaped, or whose files are damaged."""


class UnsupportedArchitectureError(CircuitlabError, ValueError):
    """A Hugging Face architecture that circuitlab has no adapter for."""


class ModelNotFoundError(CircuitlabError, FileNotFoundError):
    """A model name or path that cannot be found locally and cannot be downloaded."""
