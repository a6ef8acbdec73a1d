"""circuitlab: a workbench for mechanistic interpretability of transformers."""

from circuitlab.errors import (
    CacheKeyError,
    CheckpointError,
    CircuitlabError,
    ConfigError,
    HookNameError,
    HookNotFiredError,
    HookShapeError,
    InputError,
    ModelNotFoundError,
    UnsupportedArchitectureError,
)
from circuitlab.loading import (
    from_pretrained,
    from_pretrained_no_processing,
    load,
    save_pretrained,
    supported_architectures,
)
from circuitlab.model import ActivationCache, HookedTransformer, TransformerConfig

__version__ = "0.1.0"

__all__ = [
    "ActivationCache",
    "CacheKeyError",
    "CheckpointError",
    "CircuitlabError",
    "ConfigError",
    "HookNameError",
    "HookNotFiredError",
    "HookShapeError",
    "HookedTransformer",
    "InputError",
    "ModelNotFoundError",
    "TransformerConfig",
    "UnsupportedArchitectureError",
    "__version__",
    "from_pretrained",
    "from_pretrained_no_processing",
    "load",
    "save_pretrained",
    "supported_architectures",
]
