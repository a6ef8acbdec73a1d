"""The file names of a Hugging Face checkpoint folder, in one place for finding, downloading and reading."""

from __future__ import annotations

CONFIG_FILE = "config.json"
# (single file, index of shards) for each weight format, in order of preference.
SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
WEIGHT_FILES = SAFETENSORS_FILES + PICKLE_FILES
# Files that hold a vocabulary. tokenizer_config.json alone is not enough: transformers would build
# an empty tokenizer from it.
VOCABULARY_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "vocab.txt", "spiece.model")
TOKENIZER_FILES = (*VOCABULARY_FILES, "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "merges.txt")  # fmt: skip
