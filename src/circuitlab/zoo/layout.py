"""Where the zoo keeps its files: one folder per model, and tokenizers shared between models.

::

    weights/
      attn-only-2l/
        card.json                    what the model is, how it was trained, a sha256 for every file
        config.json                  circuitlab's own format (see loading/own_format.py)
        model.safetensors            the final weights, in the dtype they were published in
        checkpoints/step{N}.safetensors   an optional series for training-dynamics studies
      _tokenizers/
        stdlib-4096/
          tokenizer.json
          tokenizer_config.json

Paths on a card (``files``) are relative to the ``weights`` folder, so one card can vouch for the
shared tokenizer's files as well as its own. Every function takes the zoo's root folder; ``None``
means the ``weights`` folder shipped inside the package.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from circuitlab.errors import ConfigError

CARD_FILE = "card.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINTS_FOLDER = "checkpoints"
TOKENIZERS_FOLDER = "_tokenizers"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit: a folder name on every
# system, and never one of the zoo's own folders ('_tokenizers') or a hidden staging folder ('.name.publishing-...').
_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")


def weights_dir() -> Path:
    """The ``weights`` folder shipped inside the package (it may not exist while the zoo is empty)."""
    return Path(__file__).parent / "weights"


def zoo_root(root: str | os.PathLike[str] | None) -> Path:
    return weights_dir() if root is None else Path(root).expanduser()


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME_PATTERN.fullmatch(name) is not None


def check_name(name: str, what: str) -> None:
    if not is_valid_name(name):
        raise ConfigError(
            f"{what} {name!r} is not a valid zoo name: use lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (e.g. 'attn-only-2l')"
        )


def checkpoint_file(step: int) -> str:
    """The path of a checkpoint inside its model's folder."""
    return f"{CHECKPOINTS_FOLDER}/step{step}.safetensors"


def entry_path(name: str, file: str) -> str:
    """A model's file as its card names it (relative to the zoo root)."""
    return f"{name}/{file}"


def tokenizer_path(tokenizer: str, file: str) -> str:
    """A shared tokenizer's file as a card names it (relative to the zoo root)."""
    return f"{TOKENIZERS_FOLDER}/{tokenizer}/{file}"


def tokenizer_folder(root: Path, tokenizer: str) -> Path:
    return root / TOKENIZERS_FOLDER / tokenizer
