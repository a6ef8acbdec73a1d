"""The byte-level BPE tokenizer: training, determinism, special token, and use as a Hugging Face tokenizer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from circuitlab import HookedTransformer, TransformerConfig
from circuitlab.data import END_OF_TEXT, END_OF_TEXT_ID, Corpus, build_tokenizer, load_tokenizer, train_tokenizer
from circuitlab.errors import ConfigError, InputError

DATA_PACKAGE = Path(__file__).parents[2] / "src" / "circuitlab" / "data"


def test_end_of_text_is_id_zero_followed_by_the_256_bytes(tiny_tokenizer_path: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_tokenizer_path))
    assert tokenizer.token_to_id(END_OF_TEXT) == END_OF_TEXT_ID == 0
    single_bytes = [tokenizer.id_to_token(token_id) for token_id in range(1, 257)]
    assert all(len(token) == 1 for token in single_bytes) and len(set(single_bytes)) == 256


def test_vocabulary_has_the_requested_size(tiny_tokenizer_path: Path) -> None:
    assert Tokenizer.from_file(str(tiny_tokenizer_path)).get_vocab_size() == 300


def test_training_twice_gives_the_same_tokenizer(tiny_corpus: Corpus) -> None:
    first = train_tokenizer(tiny_corpus.documents("train"), vocab_size=300)
    second = train_tokenizer(tiny_corpus.documents("train"), vocab_size=300)
    assert first.to_str() == second.to_str()


def test_merges_compress_the_training_text(tiny_corpus: Corpus, tiny_tokenizer_path: Path) -> None:
    text = tiny_corpus.read_text("train")
    ids = Tokenizer.from_file(str(tiny_tokenizer_path)).encode(text).ids
    assert len(ids) < len(text.encode()) / 2


@pytest.mark.parametrize("vocab_size", [256, 70_000])
def test_vocabulary_size_outside_the_valid_range_is_rejected(vocab_size: int) -> None:
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(["x = 1"], vocab_size=vocab_size)


def test_any_text_round_trips_through_encode_and_decode(tiny_tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer_path)
    text = "def café(x):\n\treturn x ** 2  # 日本語 🙂\r\n"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_hugging_face_tokenizer_uses_end_of_text_for_bos_eos_and_padding(tiny_tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer_path)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (END_OF_TEXT,) * 3
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == tokenizer.pad_token_id == 0


def test_hugging_face_tokenizer_adds_no_special_tokens_when_encoding(tiny_tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer_path)
    assert 0 not in tokenizer("x = 1")["input_ids"]


def test_end_of_text_in_text_encodes_as_one_special_token(tiny_tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer_path)
    ids = tokenizer.encode(f"a{END_OF_TEXT}b", add_special_tokens=False)
    assert ids.count(0) == 1


def test_tokenizer_folder_loads_with_auto_tokenizer(tiny_tokenizer_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_path.parent))
    assert tokenizer.bos_token_id == 0
    assert tokenizer.encode("x = 1") == load_tokenizer(tiny_tokenizer_path).encode("x = 1")


def test_load_tokenizer_accepts_the_folder(tiny_tokenizer_path: Path) -> None:
    assert load_tokenizer(tiny_tokenizer_path.parent).encode("x") == load_tokenizer(tiny_tokenizer_path).encode("x")


def test_load_tokenizer_without_a_file_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="build_tokenizer"):
        load_tokenizer(tmp_path)


def test_built_tokenizer_is_reused(tiny_corpus: Corpus, tiny_tokenizer_path: Path) -> None:
    modified = tiny_tokenizer_path.stat().st_mtime_ns
    assert build_tokenizer(tiny_corpus, 300) == tiny_tokenizer_path
    assert tiny_tokenizer_path.stat().st_mtime_ns == modified


def test_hooked_transformer_tokenizes_with_it(tiny_tokenizer_path: Path) -> None:
    tokenizer = load_tokenizer(tiny_tokenizer_path)
    cfg = TransformerConfig(n_layers=1, d_model=16, n_ctx=32, d_vocab=len(tokenizer), n_heads=2, seed=0)
    model = HookedTransformer(cfg, tokenizer)
    tokens = model.to_tokens("return self.count")
    assert tokens[0, 0].item() == 0
    assert "".join(model.to_str_tokens(tokens[0, 1:])) == "return self.count"
    assert model(tokens).shape == (1, tokens.shape[1], len(tokenizer))
    assert torch.equal(model.to_tokens("return", prepend_bos=False)[0], torch.tensor(tokenizer.encode("return")))


def test_data_layer_imports_nothing_above_errors() -> None:
    allowed = ("circuitlab.data", "circuitlab.errors")
    for path in DATA_PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            for module in modules:
                if module == "circuitlab" or module.startswith("circuitlab."):
                    assert module.startswith(allowed), f"{path.name} imports {module}"
