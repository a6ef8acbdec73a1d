"""Padded batches: with an attention mask, every real position computes what its sequence computes alone."""

from __future__ import annotations

import pytest
import torch

from circuitlab import HookedTransformer
from circuitlab.model.tokenization import PaddingSide

from .tokenizer_fixtures import model_with_tokenizer, randomize_weights

TEXTS = [
    "When Mary and John went to the store, John gave a drink to",
    "The cat sat",
    "Hello world, the quick brown fox",
]


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    return randomize_weights(model_with_tokenizer(), seed=0).eval()


def logits_alone(model: HookedTransformer, text: str) -> torch.Tensor:
    """``[pos, d_vocab]`` logits of ``text`` run as a batch of one, without padding."""
    with torch.no_grad():
        return model(model.to_tokens(text))[0]


def assert_real_positions_match_alone(model: HookedTransformer, batch_logits: torch.Tensor, mask: torch.Tensor) -> None:
    for row, text in enumerate(TEXTS):
        real = batch_logits[row][mask[row].bool()]
        torch.testing.assert_close(real, logits_alone(model, text), atol=1e-5, rtol=0, msg=f"row {row}: {text!r}")


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_padded_tokens_with_mask_match_each_sequence_alone(model: HookedTransformer, padding_side: PaddingSide) -> None:
    tokens, mask = model.tokenize(TEXTS, padding_side=padding_side)
    assert not bool(mask.all()), "the texts must need padding"
    with torch.no_grad():
        logits = model(tokens, attention_mask=mask)
    assert_real_positions_match_alone(model, logits, mask)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_padded_text_batch_matches_each_sequence_alone(model: HookedTransformer, padding_side: PaddingSide) -> None:
    _, mask = model.tokenize(TEXTS, padding_side=padding_side)
    with torch.no_grad():
        logits = model(TEXTS, padding_side=padding_side)
    assert_real_positions_match_alone(model, logits, mask)


def test_left_padding_without_a_mask_changes_the_logits(model: HookedTransformer) -> None:
    tokens, mask = model.tokenize(TEXTS, padding_side="left")
    with torch.no_grad():
        unmasked = model(tokens)
    shortest = 1
    real = unmasked[shortest][mask[shortest].bool()]
    assert not torch.allclose(real, logits_alone(model, TEXTS[shortest]), atol=1e-3)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_loss_with_mask_ignores_padded_targets(model: HookedTransformer, padding_side: PaddingSide) -> None:
    tokens, mask = model.tokenize(TEXTS, padding_side=padding_side)
    with torch.no_grad():
        batch_loss = model(tokens, attention_mask=mask, return_type="loss")
        text_loss = model(TEXTS, padding_side=padding_side, return_type="loss")
        losses_alone = torch.stack([model(text, return_type="loss") for text in TEXTS])
    n_targets = mask.sum(dim=1) - 1  # every real token but the first is predicted
    expected = (losses_alone * n_targets).sum() / n_targets.sum()
    torch.testing.assert_close(batch_loss, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(text_loss, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_pad_token_id_does_not_change_results_at_real_positions(
    model: HookedTransformer, padding_side: PaddingSide
) -> None:
    tokens, mask = model.tokenize(TEXTS, padding_side=padding_side)
    random_ids = torch.randint(0, model.cfg.d_vocab, tokens.shape, generator=torch.Generator().manual_seed(0))
    randomly_padded = torch.where(mask.bool(), tokens, random_ids)
    assert not torch.equal(randomly_padded, tokens)
    with torch.no_grad():
        logits, loss = model(tokens, attention_mask=mask, return_type="both")
        random_logits, random_loss = model(randomly_padded, attention_mask=mask, return_type="both")
    real = mask.bool()
    torch.testing.assert_close(random_logits[real], logits[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(random_loss, loss, atol=1e-5, rtol=0)
