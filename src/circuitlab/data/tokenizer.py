"""A byte-level BPE tokenizer trained on the corpus's train split, usable as a Hugging Face tokenizer.

Choices:

- byte-level (GPT-2's pre-tokenizer regex and byte alphabet): any text encodes, nothing is unknown;
- ``<|endoftext|>`` is id 0 (the trainer places special tokens first). It stands for BOS, EOS and padding
  alike, as in GPT-2, and keeps its id whatever the vocabulary size;
- ids 1..256 are the 256 bytes, then the merges in the order they were learned;
- trained on the train split only, so validation text is new to the tokenizer too.

Training is deterministic: the same corpus and vocabulary size give the same ``tokenizer.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from circuitlab.data.corpus import END_OF_TEXT, Corpus
from circuitlab.data.files import read_json, sha256_file, write_bytes_atomic, write_json_atomic
from circuitlab.errors import ConfigError, InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

END_OF_TEXT_ID = 0
# 4096 keeps the embedding and unembedding small next to a small model's other weights (4096 x 256 is
# 1 M parameters per matrix at d_model 256) while still compressing code well: 3.5 bytes per token on
# the standard-library corpus, against 3.8 at 8192 for twice the matrices (measured, CPython 3.11).
DEFAULT_VOCAB_SIZE = 4096
# Below 257 there is no room for the 256 bytes plus <|endoftext|>; above 65536 ids no longer fit the
# uint16 token streams.
MIN_VOCAB_SIZE = 257
MAX_VOCAB_SIZE = 65536


def train_tokenizer(
    documents: Iterable[str],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    min_frequency: int = 2,
) -> Tokenizer:
    """Train a byte-level BPE tokenizer on ``documents`` (each one a string without end-of-text markers)."""
    if not MIN_VOCAB_SIZE <= vocab_size <= MAX_VOCAB_SIZE:
        raise ConfigError(
            f"vocab_size must be between {MIN_VOCAB_SIZE} (256 bytes + <|endoftext|>) and {MAX_VOCAB_SIZE} "
            f"(token streams are uint16), got {vocab_size}"
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer=trainer)
    if tokenizer.token_to_id(END_OF_TEXT) != END_OF_TEXT_ID:
        raise RuntimeError(f"{END_OF_TEXT} did not get id {END_OF_TEXT_ID}; the tokenizers library changed")
    return tokenizer


def tokenizer_folder(corpus: Corpus, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    return corpus.folder / f"tokenizer-{vocab_size}"


def build_tokenizer(corpus: Corpus, vocab_size: int = DEFAULT_VOCAB_SIZE, force: bool = False) -> Path:
    """Train the tokenizer on ``corpus`` (or reuse a finished one) and return the path of its ``tokenizer.json``.

    The folder also gets a ``tokenizer_config.json``, so ``AutoTokenizer.from_pretrained(folder)`` works.
    """
    folder = tokenizer_folder(corpus, vocab_size)
    path = folder / "tokenizer.json"
    manifest_path = folder / "manifest.json"
    expected = {"corpus_train_sha256": corpus.sha256["train"], "vocab_size": vocab_size}
    manifest = read_json(manifest_path)
    if (
        not force
        and manifest is not None
        and all(manifest.get(key) == value for key, value in expected.items())
        and path.is_file()
        and sha256_file(path) == manifest.get("tokenizer_sha256")
    ):
        return path

    tokenizer = train_tokenizer(corpus.documents("train"), vocab_size)
    write_bytes_atomic(path, tokenizer.to_str().encode("utf-8"))
    write_json_atomic(folder / "tokenizer_config.json", hugging_face_config())
    write_json_atomic(
        manifest_path,
        {
            **expected,
            "end_of_text": END_OF_TEXT,
            "end_of_text_id": END_OF_TEXT_ID,
            "actual_vocab_size": tokenizer.get_vocab_size(),
            "tokenizer_sha256": sha256_file(path),
        },
    )
    return path


def hugging_face_config() -> dict[str, object]:
    """``tokenizer_config.json`` contents: ``<|endoftext|>`` as BOS, EOS and padding, nothing added on encode."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "pad_token": END_OF_TEXT,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
    }


def load_tokenizer(path: Path | str) -> PreTrainedTokenizerFast:
    """A trained ``tokenizer.json`` (or a folder holding one) as a ``transformers.PreTrainedTokenizerFast``.

    BOS, EOS and padding are all ``<|endoftext|>`` (id 0), so ``HookedTransformer(cfg, tokenizer)``
    gets ``to_tokens``/``to_str_tokens`` with ``prepend_bos`` working as for GPT-2.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"no tokenizer file at {path}; build one with build_tokenizer(corpus)")
    return as_hugging_face(Tokenizer.from_file(str(path)))


def as_hugging_face(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a trained ``tokenizers.Tokenizer`` with ``<|endoftext|>`` as BOS, EOS and padding."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        clean_up_tokenization_spaces=hugging_face_config()["clean_up_tokenization_spaces"],
    )
