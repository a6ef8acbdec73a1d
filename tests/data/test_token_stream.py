"""Token streams on disk and the batches drawn from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from circuitlab.data import (
    END_OF_TEXT,
    Corpus,
    TokenStream,
    build_token_streams,
    encode_documents,
    sample_batches,
    sequential_batches,
    write_token_stream,
)
from circuitlab.errors import ConfigError, InputError


@pytest.fixture
def counting_stream(tmp_path: Path) -> TokenStream:
    """A stream whose token at position i is i, so every window shows where it came from."""
    write_token_stream(tmp_path / "counting.npy", np.arange(1000, dtype=np.uint16))
    return TokenStream.open(tmp_path / "counting.npy")


def test_written_stream_reads_back_unchanged(tmp_path: Path) -> None:
    tokens = np.random.default_rng(0).integers(0, 65536, size=5000).astype(np.uint16)
    write_token_stream(tmp_path / "stream.npy", tokens)
    stream = TokenStream.open(tmp_path / "stream.npy")
    assert len(stream) == 5000
    assert np.array_equal(stream[:], tokens)
    assert stream.tokens.dtype == np.uint16


def test_opened_stream_is_a_read_only_memory_map(counting_stream: TokenStream) -> None:
    assert isinstance(counting_stream.tokens, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        counting_stream.tokens[0] = 5


def test_empty_stream_round_trips(tmp_path: Path) -> None:
    write_token_stream(tmp_path / "empty.npy", np.zeros(0, dtype=np.uint16))
    assert len(TokenStream.open(tmp_path / "empty.npy")) == 0


def test_ids_that_do_not_fit_uint16_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="uint16"):
        write_token_stream(tmp_path / "stream.npy", np.array([1, 70_000]))


def test_opening_a_missing_stream_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="build_token_streams"):
        TokenStream.open(tmp_path / "missing.npy")


def test_each_document_is_followed_by_end_of_text(tiny_tokenizer_path: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_tokenizer_path))
    tokens = encode_documents(tokenizer, ["x = 1", "y = 2"])
    first, second = (tokenizer.encode(text).ids for text in ("x = 1", "y = 2"))
    assert tokens.tolist() == [*first, 0, *second, 0]


def test_built_stream_equals_encoding_the_split_text(tiny_corpus: Corpus, tiny_tokenizer_path: Path) -> None:
    paths = build_token_streams(tiny_corpus, tiny_tokenizer_path)
    tokenizer = Tokenizer.from_file(str(tiny_tokenizer_path))
    for split in ("train", "validation"):
        expected = tokenizer.encode(tiny_corpus.read_text(split)).ids
        assert TokenStream.open(paths[split])[:].tolist() == expected
        assert expected[-1] == tokenizer.token_to_id(END_OF_TEXT)


def test_stream_manifest_records_token_counts(tiny_corpus: Corpus, tiny_tokenizer_path: Path) -> None:
    paths = build_token_streams(tiny_corpus, tiny_tokenizer_path)
    manifest = json.loads((paths["train"].parent / "manifest.json").read_text())
    assert manifest["splits"]["train"]["tokens"] == len(TokenStream.open(paths["train"]))


def test_built_streams_are_reused(tiny_corpus: Corpus, tiny_tokenizer_path: Path) -> None:
    paths = build_token_streams(tiny_corpus, tiny_tokenizer_path)
    modified = paths["train"].stat().st_mtime_ns
    assert build_token_streams(tiny_corpus, tiny_tokenizer_path) == paths
    assert paths["train"].stat().st_mtime_ns == modified


def test_batches_are_int64_windows_of_the_stream(counting_stream: TokenStream) -> None:
    batch = next(sample_batches(counting_stream, batch_size=8, seq_len=16, seed=0))
    assert batch.shape == (8, 16) and batch.dtype == torch.int64
    assert torch.equal(batch, batch[:, :1] + torch.arange(16))


def test_windows_reach_both_ends_of_the_stream(tmp_path: Path) -> None:
    write_token_stream(tmp_path / "short.npy", np.arange(10, dtype=np.uint16))
    sampler = sample_batches(TokenStream.open(tmp_path / "short.npy"), batch_size=64, seq_len=8, seed=0)
    starts = {int(row[0]) for row in next(sampler)}
    assert starts == {0, 1, 2}


def test_same_seed_gives_the_same_batches(counting_stream: TokenStream) -> None:
    first = sample_batches(counting_stream, 4, 16, seed=3)
    second = sample_batches(counting_stream, 4, 16, seed=3)
    for _ in range(3):
        assert torch.equal(next(first), next(second))


def test_consecutive_batches_differ(counting_stream: TokenStream) -> None:
    sampler = sample_batches(counting_stream, 4, 16, seed=0)
    assert not torch.equal(next(sampler), next(sampler))


def test_different_seeds_give_different_batches(counting_stream: TokenStream) -> None:
    first, second = (next(sample_batches(counting_stream, 4, 16, seed=seed)) for seed in (0, 1))
    assert not torch.equal(first, second)


def test_sampler_resumed_from_its_state_continues_the_same_sequence(counting_stream: TokenStream) -> None:
    uninterrupted = sample_batches(counting_stream, 4, 16, seed=7)
    expected = [next(uninterrupted) for _ in range(6)]

    interrupted = sample_batches(counting_stream, 4, 16, seed=7)
    for _ in range(3):
        next(interrupted)
    state = json.loads(json.dumps(interrupted.state_dict()))  # as saved in a checkpoint
    resumed = sample_batches(counting_stream, 4, 16, seed=0)
    resumed.load_state_dict(state)
    for batch in expected[3:]:
        assert torch.equal(next(resumed), batch)


def test_batch_at_a_step_does_not_depend_on_the_steps_before(counting_stream: TokenStream) -> None:
    sampler = sample_batches(counting_stream, 4, 16, seed=7)
    batches = [next(sampler) for _ in range(5)]
    assert torch.equal(sample_batches(counting_stream, 4, 16, seed=7, start_step=4).batch(4), batches[4])
    assert torch.equal(next(sample_batches(counting_stream, 4, 16, seed=7, start_step=4)), batches[4])


def test_state_for_another_batch_shape_is_rejected(counting_stream: TokenStream) -> None:
    state = sample_batches(counting_stream, 4, 16, seed=7).state_dict()
    with pytest.raises(ConfigError, match="seq_len"):
        sample_batches(counting_stream, 4, 32, seed=7).load_state_dict(state)


def test_bos_starts_every_row_and_keeps_the_length(counting_stream: TokenStream) -> None:
    batch = next(sample_batches(counting_stream, 4, 16, seed=0, bos_token=999))
    assert batch.shape == (4, 16)
    assert torch.all(batch[:, 0] == 999)
    assert torch.equal(batch[:, 1:], batch[:, 1:2] + torch.arange(15))


def test_stream_shorter_than_a_window_is_rejected(tmp_path: Path) -> None:
    write_token_stream(tmp_path / "short.npy", np.arange(5, dtype=np.uint16))
    with pytest.raises(InputError, match="fewer than one window"):
        sample_batches(TokenStream.open(tmp_path / "short.npy"), 2, 8, seed=0)


def test_sampler_accepts_a_plain_array() -> None:
    batch = next(sample_batches(np.arange(100, dtype=np.uint16), 2, 8, seed=0))
    assert batch.shape == (2, 8)


def test_sequential_batches_cover_the_stream_in_order(tmp_path: Path) -> None:
    write_token_stream(tmp_path / "stream.npy", np.arange(50, dtype=np.uint16))
    batches = list(sequential_batches(TokenStream.open(tmp_path / "stream.npy"), batch_size=4, seq_len=8))
    assert [batch.shape[0] for batch in batches] == [4, 2]
    assert torch.equal(torch.cat(batches).flatten(), torch.arange(48))


def test_sequential_batches_stop_after_max_batches(counting_stream: TokenStream) -> None:
    assert len(list(sequential_batches(counting_stream, batch_size=2, seq_len=8, max_batches=3))) == 3
