"""Corpus splits as token streams on disk, and reproducible, resumable batches drawn from them.

A token stream is one long ``uint16`` array in a ``.npy`` file: every document's tokens followed by
``<|endoftext|>``, documents in corpus order. It is opened as a read-only memory map, so a training
run touches only the windows it samples and several processes share one copy in the page cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from jaxtyping import Int
from tokenizers import Tokenizer
from torch import Tensor

from circuitlab.data.corpus import SPLITS, Corpus, Split
from circuitlab.data.files import atomic_output, read_json, sha256_file, write_json_atomic
from circuitlab.data.tokenizer import END_OF_TEXT_ID, MAX_VOCAB_SIZE
from circuitlab.errors import ConfigError, InputError

TOKEN_DTYPE = np.uint16
STREAM_FORMAT_VERSION = 1


def encode_documents(
    tokenizer: Tokenizer, documents: list[str], end_of_text_id: int = END_OF_TEXT_ID, chunk: int = 256
) -> np.ndarray:
    """Token ids ``[n_tokens]`` (uint16): each document's tokens followed by ``end_of_text_id``."""
    if tokenizer.get_vocab_size() > MAX_VOCAB_SIZE:
        raise ConfigError(f"a vocabulary of {tokenizer.get_vocab_size()} does not fit uint16 token streams")
    # encode_batch_fast (tokenizers >= 0.20) skips the character offsets we do not need: ~2x faster.
    encode_batch = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    pieces = []
    for start in range(0, len(documents), chunk):
        for encoding in encode_batch(documents[start : start + chunk], add_special_tokens=False):
            pieces.append(np.asarray(encoding.ids, dtype=TOKEN_DTYPE))
            pieces.append(np.asarray([end_of_text_id], dtype=TOKEN_DTYPE))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=TOKEN_DTYPE)


def write_token_stream(path: Path, tokens: np.ndarray) -> None:
    """Write ``tokens`` ``[n_tokens]`` as a uint16 ``.npy`` file, atomically."""
    if tokens.ndim != 1:
        raise InputError(f"a token stream is one-dimensional, got shape {tuple(tokens.shape)}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= MAX_VOCAB_SIZE):
        raise InputError(f"token ids must lie in [0, {MAX_VOCAB_SIZE}) to be stored as uint16")
    with atomic_output(path) as temporary:
        if tokens.size == 0:  # an empty array cannot be memory-mapped
            with open(temporary, "wb") as file:
                np.save(file, tokens.astype(TOKEN_DTYPE))
        else:
            array = np.lib.format.open_memmap(temporary, mode="w+", dtype=TOKEN_DTYPE, shape=tokens.shape)
            array[:] = tokens
            array.flush()
            del array


class TokenStream:
    """A token stream opened read-only: ``len(stream)`` tokens, sliced like an array."""

    def __init__(self, tokens: np.ndarray, path: Path | None = None) -> None:
        if tokens.ndim != 1:
            raise InputError(f"a token stream is one-dimensional, got shape {tuple(tokens.shape)}")
        self.tokens = tokens
        self.path = path

    @classmethod
    def open(cls, path: Path | str) -> TokenStream:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"no token stream at {path}; build one with build_token_streams(corpus, tokenizer)")
        tokens = np.load(path, mmap_mode="r")
        if tokens.dtype != TOKEN_DTYPE:
            raise InputError(f"{path} holds {tokens.dtype} values; a token stream holds {np.dtype(TOKEN_DTYPE)}")
        return cls(tokens, path)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.tokens[index]

    def __repr__(self) -> str:
        return f"TokenStream({len(self)} tokens{f', {self.path}' if self.path else ''})"


def build_token_streams(corpus: Corpus, tokenizer_path: Path | str, force: bool = False) -> dict[Split, Path]:
    """Encode each split of ``corpus`` with the tokenizer (or reuse finished streams); ``{split: path}``.

    The streams live in ``<corpus folder>/tokens-<tokenizer hash>/`` beside a ``manifest.json`` that
    records the token counts and file hashes.
    """
    tokenizer_path = Path(tokenizer_path)
    tokenizer_sha256 = sha256_file(tokenizer_path)
    folder = corpus.folder / f"tokens-{tokenizer_sha256[:12]}"
    paths: dict[Split, Path] = {split: folder / f"{split}.npy" for split in SPLITS}
    expected = {
        "format_version": STREAM_FORMAT_VERSION,
        "tokenizer_sha256": tokenizer_sha256,
        "corpus_sha256": corpus.sha256,
    }
    if not force and _streams_intact(folder / "manifest.json", expected, paths):
        return paths

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    summaries = {}
    for split, path in paths.items():
        tokens = encode_documents(tokenizer, list(corpus.documents(split)))
        write_token_stream(path, tokens)
        n_bytes = corpus.manifest["splits"][split]["bytes"]
        summaries[split] = {
            "tokens": int(tokens.size),
            "bytes_per_token": n_bytes / tokens.size if tokens.size else None,
            "sha256": sha256_file(path),
        }
    write_json_atomic(folder / "manifest.json", {**expected, "dtype": "uint16", "splits": summaries})
    return paths


def _streams_intact(manifest_path: Path, expected: dict[str, Any], paths: dict[Split, Path]) -> bool:
    manifest = read_json(manifest_path)
    if manifest is None or any(manifest.get(key) != value for key, value in expected.items()):
        return False
    return all(path.is_file() and sha256_file(path) == manifest["splits"][s]["sha256"] for s, path in paths.items())


@dataclass
class BatchSampler:
    """Random windows of a token stream, ``[batch_size, seq_len]`` int64, reproducible step by step.

    Batch ``step`` depends only on ``(seed, step)`` (its generator is ``np.random.default_rng([seed,
    step])``), so a run resumed from ``state_dict()`` continues with exactly the batches it would have
    seen. With ``bos_token`` each row starts with it and holds ``seq_len - 1`` stream tokens.
    """

    stream: TokenStream
    batch_size: int
    seq_len: int
    seed: int
    bos_token: int | None = None
    step: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.seq_len < (2 if self.bos_token is not None else 1):
            raise ConfigError(f"seq_len must leave room for at least one stream token, got {self.seq_len}")
        if self.seed < 0 or self.step < 0:
            raise ConfigError(f"seed and step must be non-negative, got seed={self.seed}, step={self.step}")
        if len(self.stream) < self.window:
            raise InputError(f"the stream has {len(self.stream)} tokens, fewer than one window of {self.window}")

    @property
    def window(self) -> int:
        """Stream tokens per row."""
        return self.seq_len - (1 if self.bos_token is not None else 0)

    def batch(self, step: int) -> Int[Tensor, "batch seq_len"]:
        """The batch number ``step`` (independent of the sampler's current position)."""
        rng = np.random.default_rng([self.seed, step])
        starts = rng.integers(0, len(self.stream) - self.window + 1, size=self.batch_size)
        rows = self.stream.tokens[starts[:, None] + np.arange(self.window)]  # [batch, window]
        tokens = torch.from_numpy(rows.astype(np.int64))
        if self.bos_token is not None:
            bos = torch.full((self.batch_size, 1), self.bos_token, dtype=torch.long)
            tokens = torch.cat([bos, tokens], dim=1)
        return tokens

    def __iter__(self) -> Iterator[Int[Tensor, "batch seq_len"]]:
        return self

    def __next__(self) -> Int[Tensor, "batch seq_len"]:
        tokens = self.batch(self.step)
        self.step += 1
        return tokens

    def state_dict(self) -> dict[str, int | None]:
        return {
            "seed": self.seed,
            "step": self.step,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "bos_token": self.bos_token,
        }

    def load_state_dict(self, state: dict[str, int | None]) -> None:
        """Continue from a saved state; the batch shape and BOS must match this sampler's."""
        for key in ("batch_size", "seq_len", "bos_token"):
            if state.get(key) != getattr(self, key):
                raise ConfigError(
                    f"the saved sampler state has {key}={state.get(key)!r} but this sampler has "
                    f"{getattr(self, key)!r}; build the sampler with the saved settings to resume"
                )
        self.seed = int(state["seed"])  # type: ignore[arg-type]
        self.step = int(state["step"])  # type: ignore[arg-type]


def sample_batches(
    stream: TokenStream | np.ndarray,
    batch_size: int,
    seq_len: int,
    seed: int,
    bos_token: int | None = None,
    start_step: int = 0,
) -> BatchSampler:
    """An endless iterator of random ``[batch_size, seq_len]`` windows; see ``BatchSampler``."""
    if isinstance(stream, np.ndarray):
        stream = TokenStream(stream)
    return BatchSampler(stream, batch_size, seq_len, seed, bos_token, start_step)


def sequential_batches(
    stream: TokenStream | np.ndarray,
    batch_size: int,
    seq_len: int,
    bos_token: int | None = None,
    max_batches: int | None = None,
) -> Iterator[Int[Tensor, "batch seq_len"]]:
    """Consecutive non-overlapping windows from the start of the stream (for evaluation).

    Each yielded batch is ``[<=batch_size, seq_len]``; the last one may have fewer rows, and a final
    partial window is dropped.
    """
    tokens = stream.tokens if isinstance(stream, TokenStream) else stream
    window = seq_len - (1 if bos_token is not None else 0)
    if window < 1 or batch_size < 1:
        raise ConfigError(f"need batch_size >= 1 and room for a stream token in seq_len, got {batch_size}, {seq_len}")
    n_windows = tokens.shape[0] // window
    for batch_index, first in enumerate(range(0, n_windows, batch_size)):
        if max_batches is not None and batch_index >= max_batches:
            return
        rows = min(batch_size, n_windows - first)
        block = np.asarray(tokens[first * window : (first + rows) * window], dtype=np.int64)
        batch = torch.from_numpy(rearrange(block, "(row pos) -> row pos", pos=window))
        if bos_token is not None:
            batch = torch.cat([torch.full((rows, 1), bos_token, dtype=torch.long), batch], dim=1)
        yield batch
