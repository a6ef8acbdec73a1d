"""The tokenizer stored next to a checkpoint's weights, if there is one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from circuitlab.errors import CheckpointError
from circuitlab.loading.file_names import VOCABULARY_FILES

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in VOCABULARY_FILES)


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase | None:
    """``AutoTokenizer.from_pretrained(folder)`` from local files only, or None if the folder holds no tokenizer."""
    if not has_tokenizer(folder):
        return None
    from transformers import AutoTokenizer  # importing transformers takes seconds; only pay it when needed

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers raises many kinds (OSError, ValueError, KeyError, ...)
        raise CheckpointError(
            f"the tokenizer files in {folder} could not be loaded ({type(err).__name__}: {err}); "
            f"remove {', '.join(VOCABULARY_FILES)} from the folder to load the model without a tokenizer"
        ) from err
