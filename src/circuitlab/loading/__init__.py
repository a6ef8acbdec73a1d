"""Loading pretrained checkpoints into a HookedTransformer, and circuitlab's own save format.

``from_pretrained("gpt2")`` reads a Hugging Face checkpoint (a local folder, the Hugging Face cache,
or a download) through the adapter for its architecture; ``save_pretrained(model, folder)`` and
``load(folder)`` keep a model, processed or not, in circuitlab's own format.
"""

from circuitlab.loading.known_models import KnownModel, find_known_model, known_models
from circuitlab.loading.own_format import load, save_pretrained
from circuitlab.loading.pretrained import from_pretrained, from_pretrained_no_processing
from circuitlab.loading.registry import supported_architectures

__all__ = [
    "KnownModel",
    "find_known_model",
    "from_pretrained",
    "from_pretrained_no_processing",
    "known_models",
    "load",
    "save_pretrained",
    "supported_architectures",
]
