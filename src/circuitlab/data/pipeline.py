"""Everything a zoo training run needs from the data layer, built (or found in the cache) in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from circuitlab.data.corpus import Corpus, CorpusOptions, Split, build_corpus
from circuitlab.data.token_stream import TokenStream, build_token_streams
from circuitlab.data.tokenizer import DEFAULT_VOCAB_SIZE, build_tokenizer, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


@dataclass(frozen=True)
class PreparedData:
    """The corpus, its tokenizer and its token streams, as files in the cache."""

    corpus: Corpus
    tokenizer_path: Path
    stream_paths: dict[Split, Path]

    def tokenizer(self) -> PreTrainedTokenizerFast:
        return load_tokenizer(self.tokenizer_path)

    def stream(self, split: Split) -> TokenStream:
        return TokenStream.open(self.stream_paths[split])


def prepare_stdlib_data(
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    root: Path | str | None = None,
    cache_dir: Path | str | None = None,
    options: CorpusOptions | None = None,
) -> PreparedData:
    """Build the standard-library corpus, train its tokenizer and encode its splits, reusing cached results.

    The first call takes about half a minute on 2 cores; later calls only check file hashes.
    """
    corpus = build_corpus(root, cache_dir, options)
    tokenizer_path = build_tokenizer(corpus, vocab_size)
    return PreparedData(corpus, tokenizer_path, build_token_streams(corpus, tokenizer_path))
