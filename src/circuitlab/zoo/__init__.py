"""The zoo: small trained models that ship inside the package and load offline in well under a second.

``list_models()`` says what is there, ``card(name)`` how each model was trained and how well it did,
``load(name)`` gives a ``HookedTransformer`` (float32, with its tokenizer) after checking every
file's sha256 against the card, and ``load(name, checkpoint=step)`` a point of its training run.
Training recipes add models with ``publish``.
"""

from circuitlab.zoo.catalogue import ZooEntry, card, checkpoint_steps, list_models, model_names, verify_model
from circuitlab.zoo.layout import weights_dir
from circuitlab.zoo.loader import load, load_name_or_path
from circuitlab.zoo.model_card import ModelCard
from circuitlab.zoo.publishing import publish

__all__ = [
    "ModelCard",
    "ZooEntry",
    "card",
    "checkpoint_steps",
    "list_models",
    "load",
    "load_name_or_path",
    "model_names",
    "publish",
    "verify_model",
    "weights_dir",
]
