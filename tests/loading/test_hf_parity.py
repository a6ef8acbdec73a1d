"""A GPT-2 checkpoint loaded by circuitlab computes what ``transformers`` computes, processed or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from circuitlab.loading import from_pretrained, from_pretrained_no_processing

TOLERANCE = 1e-4
CONFIGS: dict[str, dict[str, Any]] = {
    "gelu_new": dict(n_layer=2, n_embd=32, n_head=4, vocab_size=320, activation_function="gelu_new"),
    "gelu-n_inner": dict(n_layer=3, n_embd=48, n_head=3, vocab_size=512, activation_function="gelu", n_inner=80),
    "relu": dict(n_layer=2, n_embd=64, n_head=2, vocab_size=1000, activation_function="relu"),
    "gelu_new-n_inner-eps": dict(n_layer=3, n_embd=64, n_head=4, vocab_size=400, n_inner=96, layer_norm_epsilon=1e-3),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def checkpoint(request: pytest.FixtureRequest, make_hf_checkpoint: Callable[..., Any]) -> Any:
    return make_hf_checkpoint(seed=len(request.param), with_tokenizer=False, **CONFIGS[request.param])


@pytest.fixture(scope="module")
def tokens(checkpoint: Any) -> Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, checkpoint.model.config.vocab_size, (3, 32), generator=generator)


def hf_run(checkpoint: Any, tokens: Tensor) -> tuple[Tensor, tuple[Tensor, ...], Tensor]:
    """HF's logits, hidden states, and the residual stream entering ln_f (which no hidden state shows)."""
    captured: list[Tensor] = []
    handle = checkpoint.model.transformer.ln_f.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    try:
        with torch.no_grad():
            output = checkpoint.model(tokens, output_hidden_states=True)
    finally:
        handle.remove()
    return output.logits, output.hidden_states, captured[0]


def centred(x: Tensor) -> Tensor:
    return x - x.mean(dim=-1, keepdim=True)


def test_unprocessed_logits_match_transformers(checkpoint: Any, tokens: Tensor) -> None:
    model = from_pretrained_no_processing(checkpoint.folder)
    hf_logits, _, _ = hf_run(checkpoint, tokens)
    with torch.no_grad():
        logits = model(tokens)
    torch.testing.assert_close(logits, hf_logits, atol=TOLERANCE, rtol=0)


def test_unprocessed_residual_streams_match_hidden_states(checkpoint: Any, tokens: Tensor) -> None:
    model = from_pretrained_no_processing(checkpoint.folder)
    _, hidden_states, final_residual = hf_run(checkpoint, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    n_layers = model.cfg.n_layers
    assert len(hidden_states) == n_layers + 1
    for layer in range(n_layers):
        torch.testing.assert_close(
            cache[f"blocks.{layer}.hook_resid_pre"], hidden_states[layer], atol=TOLERANCE, rtol=0
        )
    torch.testing.assert_close(cache[f"blocks.{n_layers - 1}.hook_resid_post"], final_residual, atol=TOLERANCE, rtol=0)
    # HF's last hidden state has ln_f applied.
    torch.testing.assert_close(cache["ln_final.hook_normalized"], hidden_states[-1], atol=TOLERANCE, rtol=0)


def test_processed_log_probs_match_transformers(checkpoint: Any, tokens: Tensor) -> None:
    model = from_pretrained(checkpoint.folder)
    hf_logits, _, _ = hf_run(checkpoint, tokens)
    with torch.no_grad():
        log_probs = model(tokens).log_softmax(dim=-1)
    torch.testing.assert_close(log_probs, hf_logits.log_softmax(dim=-1), atol=TOLERANCE, rtol=0)


def test_processed_residual_streams_are_hf_streams_without_their_mean(checkpoint: Any, tokens: Tensor) -> None:
    model = from_pretrained(checkpoint.folder)
    _, hidden_states, final_residual = hf_run(checkpoint, tokens)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    n_layers = model.cfg.n_layers
    for layer in range(n_layers):
        torch.testing.assert_close(
            cache[f"blocks.{layer}.hook_resid_pre"], centred(hidden_states[layer]), atol=TOLERANCE, rtol=0
        )
    torch.testing.assert_close(
        cache[f"blocks.{n_layers - 1}.hook_resid_post"], centred(final_residual), atol=TOLERANCE, rtol=0
    )


def test_processing_is_actually_applied(checkpoint: Any) -> None:
    model = from_pretrained(checkpoint.folder)
    assert model.cfg.normalization_type == "LNPre"
    assert model.ln_final.w is None
    torch.testing.assert_close(model.W_E.mean(dim=-1), torch.zeros(model.cfg.d_vocab), atol=1e-6, rtol=0)
    assert float(model.b_V.detach().abs().max()) == 0.0
