"""prepare_stdlib_data: corpus, tokenizer and token streams in one call, reused from the cache."""

from __future__ import annotations

from pathlib import Path

from circuitlab.data import CorpusOptions, prepare_stdlib_data

OPTIONS = CorpusOptions(validation_fraction=0.5)


def test_prepared_data_gives_a_tokenizer_and_both_streams(fake_stdlib: Path) -> None:
    data = prepare_stdlib_data(vocab_size=300, root=fake_stdlib, options=OPTIONS)
    tokenizer = data.tokenizer()
    train = data.stream("train")
    assert len(tokenizer) == 300
    assert len(train) > 0 and len(data.stream("validation")) > 0
    assert train[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(train[:].tolist()) == data.corpus.read_text("train")


def test_second_call_reuses_every_file(fake_stdlib: Path) -> None:
    first = prepare_stdlib_data(vocab_size=300, root=fake_stdlib, options=OPTIONS)
    files = [first.tokenizer_path, *first.stream_paths.values()]
    modified = [path.stat().st_mtime_ns for path in files]
    second = prepare_stdlib_data(vocab_size=300, root=fake_stdlib, options=OPTIONS)
    assert second == first
    assert [path.stat().st_mtime_ns for path in files] == modified
