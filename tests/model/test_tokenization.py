"""Text <-> tokens: BOS, padding and its mask, string views of tokens, and models without a tokenizer."""

from __future__ import annotations

import pytest
import torch

from circuitlab import HookedTransformer, InputError, TransformerConfig

from .tokenizer_fixtures import END_OF_TEXT, model_with_tokenizer, tiny_tokenizer

TEXT = "When Mary and John went to the store"


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return model_with_tokenizer()


def test_fixture_tokenizer_uses_end_of_text_for_bos_eos_and_padding() -> None:
    tokenizer = tiny_tokenizer()
    special = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    assert special == {tokenizer.convert_tokens_to_ids(END_OF_TEXT)}


# -- to_tokens and tokenize -------------------------------------------------------------------


def test_to_tokens_prepends_bos_by_default(model: HookedTransformer) -> None:
    tokens = model.to_tokens(TEXT)
    without_bos = model.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert tokens.shape == (1, len(without_bos) + 1)
    assert tokens[0].tolist() == [model.bos_token_id, *without_bos]


def test_to_tokens_without_bos_when_asked(model: HookedTransformer) -> None:
    without_bos = model.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    assert model.to_tokens(TEXT, prepend_bos=False)[0].tolist() == without_bos


def test_default_prepend_bos_comes_from_the_config() -> None:
    model = model_with_tokenizer(default_prepend_bos=False)
    assert model.to_tokens(TEXT)[0, 0] != model.bos_token_id
    assert model.to_tokens(TEXT, prepend_bos=True)[0, 0] == model.bos_token_id


def test_list_input_is_right_padded_by_default_with_a_matching_mask(model: HookedTransformer) -> None:
    tokens, mask = model.tokenize(["The cat", TEXT])
    short = model.to_tokens("The cat")[0]
    assert tokens.shape == model.to_tokens([TEXT, TEXT]).shape
    assert tokens[0, : len(short)].tolist() == short.tolist()
    assert bool((tokens[0, len(short) :] == model.pad_token_id).all())
    assert mask[0].tolist() == [1] * len(short) + [0] * (tokens.shape[1] - len(short))
    assert bool(mask[1].all())
    assert torch.equal(tokens[1], model.to_tokens(TEXT)[0])


def test_list_input_is_left_padded_on_request(model: HookedTransformer) -> None:
    tokens, mask = model.tokenize(["The cat", TEXT], padding_side="left")
    short = model.to_tokens("The cat")[0]
    n_pad = tokens.shape[1] - len(short)
    assert tokens[0, n_pad:].tolist() == short.tolist()
    assert bool((tokens[0, :n_pad] == model.pad_token_id).all())
    assert mask[0].tolist() == [0] * n_pad + [1] * len(short)
    assert torch.equal(model.to_tokens(["The cat", TEXT], padding_side="left"), tokens)


def test_invalid_padding_side_raises_input_error(model: HookedTransformer) -> None:
    with pytest.raises(InputError, match="padding_side"):
        model.tokenize(["a", "b"], padding_side="middle")  # type: ignore[arg-type]


# -- from tokens back to text -----------------------------------------------------------------


def test_to_str_tokens_of_a_string_lists_each_token(model: HookedTransformer) -> None:
    pieces = model.to_str_tokens(TEXT)
    assert pieces[0] == END_OF_TEXT
    assert "".join(pieces[1:]) == TEXT
    assert len(pieces) == model.to_tokens(TEXT).shape[1]


def test_to_str_tokens_of_a_1d_tensor_matches_the_string_form(model: HookedTransformer) -> None:
    assert model.to_str_tokens(model.to_tokens(TEXT)[0]) == model.to_str_tokens(TEXT)


def test_to_str_tokens_of_a_2d_tensor_gives_a_list_per_row(model: HookedTransformer) -> None:
    tokens = model.to_tokens(["The cat", "The dog"])  # " cat" is two tokens, " dog" one
    padded_dog = [*model.to_str_tokens("The dog"), END_OF_TEXT]
    assert model.to_str_tokens(tokens) == [model.to_str_tokens("The cat"), padded_dog]


def test_to_string_inverts_to_tokens(model: HookedTransformer) -> None:
    assert model.to_string(model.to_tokens(TEXT, prepend_bos=False)[0]) == TEXT
    assert model.to_string(model.to_tokens(TEXT)[0]) == END_OF_TEXT + TEXT


def test_to_string_of_a_batch_gives_a_list(model: HookedTransformer) -> None:
    texts = ["The quick brown fox", "Hello world"]
    tokens, mask = model.tokenize(texts, prepend_bos=False, padding_side="left")
    n_pad = int((mask[1] == 0).sum())
    assert model.to_string(tokens) == [texts[0], END_OF_TEXT * n_pad + texts[1]]


def test_to_single_token_returns_the_id_of_a_one_token_string(model: HookedTransformer) -> None:
    token = model.to_single_token(" Mary")
    assert isinstance(token, int)
    assert model.to_string([token]) == " Mary"


def test_to_single_token_rejects_a_string_of_several_tokens(model: HookedTransformer) -> None:
    with pytest.raises(InputError, match="not one"):
        model.to_single_token(" zebra")


# -- running on text --------------------------------------------------------------------------


def test_forward_on_text_equals_forward_on_its_tokens(model: HookedTransformer) -> None:
    with torch.no_grad():
        torch.testing.assert_close(model(TEXT), model(model.to_tokens(TEXT)), atol=0, rtol=0)
        torch.testing.assert_close(
            model(TEXT, prepend_bos=False), model(model.to_tokens(TEXT, prepend_bos=False)), atol=0, rtol=0
        )


@pytest.mark.parametrize(
    "use_text",
    [
        lambda model: model.to_tokens("hi"),
        lambda model: model.tokenize(["hi", "there"]),
        lambda model: model.to_str_tokens("hi"),
        lambda model: model.to_string(torch.tensor([1, 2])),
        lambda model: model.to_single_token("hi"),
        lambda model: model("hi"),
        lambda model: model.generate("hi", stop_at_eos=False),
    ],
    ids=["to_tokens", "tokenize", "to_str_tokens", "to_string", "to_single_token", "forward", "generate"],
)
def test_model_without_tokenizer_raises_input_error_on_text(use_text) -> None:
    model = HookedTransformer(TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=20, n_heads=2, seed=0))
    with pytest.raises(InputError, match="no tokenizer"):
        use_text(model)
