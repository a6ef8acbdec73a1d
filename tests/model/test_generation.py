"""generate: greedy and sampled decoding, the KV cache, padding, stopping, return types and hooks."""

from __future__ import annotations

import pytest
import torch

from circuitlab import HookedTransformer, InputError, TransformerConfig
from circuitlab.model.generation import IncrementalDecoder, keep_top_k, keep_top_p, sample_next_token

from .tokenizer_fixtures import model_with_tokenizer, randomize_weights


def random_model(n_layers: int = 2, d_vocab: int = 60, n_ctx: int = 32, seed: int = 0) -> HookedTransformer:
    """A random model with every weight (biases and norms too) large enough for varied greedy outputs."""
    cfg = TransformerConfig(n_layers=n_layers, d_model=32, n_ctx=n_ctx, d_vocab=d_vocab, n_heads=4, seed=seed)
    return randomize_weights(HookedTransformer(cfg), seed=seed)


def random_tokens(batch: int, pos: int, d_vocab: int = 60, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, d_vocab, (batch, pos), generator=torch.Generator().manual_seed(seed))


def left_padded_batch(d_vocab: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Three prompts of 6, 3 and 1 real tokens, left-padded with token 0."""
    tokens = random_tokens(3, 6, d_vocab)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1]])
    return tokens.masked_fill(mask == 0, 0), mask


def greedy(model: HookedTransformer, tokens: torch.Tensor, n: int = 10, **kwargs: object) -> torch.Tensor:
    return model.generate(tokens, max_new_tokens=n, do_sample=False, stop_at_eos=False, **kwargs)


# -- greedy decoding and the KV cache ---------------------------------------------------------


@pytest.mark.parametrize("n_layers", [1, 2])
def test_greedy_with_kv_cache_matches_greedy_without(n_layers: int) -> None:
    model = random_model(n_layers)
    prompt = random_tokens(2, 5)
    with_cache = greedy(model, prompt, use_past_kv_cache=True)
    without_cache = greedy(model, prompt, use_past_kv_cache=False)
    assert with_cache.shape == (2, 15)
    assert len(set(with_cache[:, 5:].flatten().tolist())) > 2, "the random model should not repeat one token"
    assert torch.equal(with_cache, without_cache)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_greedy_with_kv_cache_matches_greedy_without_for_left_padded_batch(n_layers: int) -> None:
    model = random_model(n_layers)
    tokens, mask = left_padded_batch()
    with_cache = greedy(model, tokens, attention_mask=mask, use_past_kv_cache=True)
    without_cache = greedy(model, tokens, attention_mask=mask, use_past_kv_cache=False)
    assert torch.equal(with_cache, without_cache)


def test_left_padded_batch_continues_each_prompt_as_if_it_ran_alone() -> None:
    model = random_model()
    tokens, mask = left_padded_batch()
    batched = greedy(model, tokens, attention_mask=mask)
    for row in range(tokens.shape[0]):
        alone = greedy(model, tokens[row, mask[row].bool()][None])
        assert torch.equal(batched[row, 6:], alone[0, -10:]), f"row {row}"


def test_prompt_is_returned_unchanged_at_the_start_of_the_output() -> None:
    tokens, mask = left_padded_batch()
    output = greedy(random_model(), tokens, attention_mask=mask, n=4)
    assert torch.equal(output[:, :6], tokens)


def test_greedy_matches_hugging_face_gpt2_generate() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from circuitlab.loading.gpt2 import convert_config, convert_state_dict

    hf_config = GPT2Config(
        vocab_size=60, n_positions=32, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0, pad_token_id=0
    )
    hf_model = GPT2LMHeadModel(hf_config).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in hf_model.named_parameters():  # random biases and norms too, for varied outputs
            noise = torch.randn(param.shape, generator=generator) * 0.3
            param.copy_(1.0 + noise if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else noise)
    cfg = convert_config(hf_config.to_dict())
    model = HookedTransformer(cfg)
    model.load_state_dict(convert_state_dict(hf_model.state_dict(), cfg))
    prompt = random_tokens(1, 5, seed=3)

    with torch.no_grad():
        expected = hf_model.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False, eos_token_id=None
        )
    ours = greedy(model, prompt, n=12)
    assert len(set(expected[0, 5:].tolist())) > 2, "the random model should not repeat one token"
    assert torch.equal(ours, expected)


@pytest.mark.parametrize("padded", [False, True], ids=["single", "left_padded_batch"])
def test_kv_cache_logits_equal_full_forward_last_position_at_every_step(padded: bool) -> None:
    model = random_model()
    tokens, mask = left_padded_batch() if padded else (random_tokens(1, 5), None)
    decoder = IncrementalDecoder(model, tokens, mask, use_past_kv_cache=True)
    with torch.inference_mode():
        for _ in range(8):
            cached = decoder.next_token_logits()
            full = model(decoder.tokens, attention_mask=decoder.attention_mask if padded else None)[:, -1]
            torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
            decoder.append(cached.argmax(dim=-1))
    assert decoder.kv_cache is not None and decoder.kv_cache[0].length == tokens.shape[1] + 7


def test_greedy_is_chosen_by_temperature_zero_as_by_do_sample_false() -> None:
    model = random_model()
    prompt = random_tokens(2, 4)
    sampled_cold = model.generate(prompt, max_new_tokens=8, temperature=0.0, stop_at_eos=False, seed=5)
    assert torch.equal(sampled_cold, greedy(model, prompt, n=8))


# -- sampling ---------------------------------------------------------------------------------


def test_top_k_one_sampling_equals_greedy() -> None:
    model = random_model()
    prompt = random_tokens(3, 4)
    sampled = model.generate(prompt, max_new_tokens=8, top_k=1, temperature=2.0, stop_at_eos=False, seed=0)
    assert torch.equal(sampled, greedy(model, prompt, n=8))


def test_tiny_top_p_sampling_equals_greedy() -> None:
    model = random_model()
    prompt = random_tokens(3, 4)
    sampled = model.generate(prompt, max_new_tokens=8, top_p=1e-6, temperature=2.0, stop_at_eos=False, seed=0)
    assert torch.equal(sampled, greedy(model, prompt, n=8))


def test_sampling_with_the_same_seed_is_reproducible() -> None:
    model = random_model()
    prompt = random_tokens(4, 3)

    def sample(seed: int) -> torch.Tensor:
        return model.generate(prompt, max_new_tokens=10, temperature=1.5, stop_at_eos=False, seed=seed)

    assert torch.equal(sample(7), sample(7))
    assert not torch.equal(sample(7), sample(8))


def test_first_sampled_token_follows_softmax_of_logits_over_temperature() -> None:
    d_vocab, n_samples, temperature = 8, 4000, 0.7
    model = random_model(d_vocab=d_vocab)
    with torch.no_grad():
        model.unembed.W_U.mul_(3.0)  # spread the logits so the temperature matters
    prompt = random_tokens(1, 4, d_vocab=d_vocab)
    with torch.no_grad():
        logits = model(prompt)[0, -1]

    output = model.generate(
        prompt.expand(n_samples, -1), max_new_tokens=1, temperature=temperature, stop_at_eos=False, seed=0
    )
    counts = torch.bincount(output[:, -1], minlength=d_vocab).double()

    def chi_square(probs: torch.Tensor) -> float:
        expected = probs.double() * n_samples
        return float(((counts - expected) ** 2 / expected).sum())

    # 7 degrees of freedom: P(chi2 > 30) is about 1e-4.
    assert chi_square(torch.softmax(logits / temperature, dim=-1)) < 30
    assert chi_square(torch.softmax(logits, dim=-1)) > 100, "the check must tell temperatures apart"


def test_sample_next_token_is_greedy_at_temperature_zero() -> None:
    logits = torch.randn(5, 20, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next_token(logits, temperature=0.0), logits.argmax(dim=-1))


def test_top_k_never_samples_outside_the_top_k() -> None:
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(0)).repeat(500, 1)
    samples = sample_next_token(logits, temperature=3.0, top_k=5, generator=torch.Generator().manual_seed(1))
    top_5 = logits.topk(5, dim=-1).indices
    assert bool((samples[:, None] == top_5).any(dim=-1).all())
    assert len(samples[::4].unique()) == 5, "every one of the first row's top 5 should be drawn"


def test_top_p_never_samples_outside_the_nucleus() -> None:
    logits = torch.log(torch.tensor([0.05, 0.4, 0.02, 0.3, 0.13, 0.1]))  # nucleus for 0.75: ids 1, 3, 4
    samples = sample_next_token(
        logits.repeat(3000, 1), temperature=1.0, top_p=0.75, generator=torch.Generator().manual_seed(0)
    )
    assert set(samples.tolist()) == {1, 3, 4}


def test_keep_top_k_keeps_exactly_k_tokens_even_with_ties() -> None:
    logits = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0]])
    kept = keep_top_k(logits, 2)
    assert int(torch.isfinite(kept).sum()) == 2
    assert bool((kept[torch.isfinite(kept)] == 3.0).all())


@pytest.mark.parametrize(("top_p", "kept"), [(0.3, [1]), (0.75, [1, 3, 4]), (0.9, [1, 3, 4, 5]), (1.0, list(range(6)))])
def test_keep_top_p_keeps_the_smallest_set_whose_mass_reaches_top_p(top_p: float, kept: list[int]) -> None:
    logits = torch.log(torch.tensor([[0.05, 0.4, 0.02, 0.3, 0.13, 0.1]]))
    filtered = keep_top_p(logits, top_p)
    assert torch.isfinite(filtered[0]).nonzero()[:, 0].tolist() == kept
    torch.testing.assert_close(filtered[0, kept], logits[0, kept])


@pytest.mark.parametrize(
    "options", [{"temperature": -1.0}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}], ids=lambda o: str(o)
)
def test_invalid_sampling_options_raise_input_error(options: dict[str, float]) -> None:
    with pytest.raises(InputError):
        random_model().generate(random_tokens(1, 3), max_new_tokens=2, stop_at_eos=False, **options)


# -- stopping ---------------------------------------------------------------------------------


def test_stop_at_eos_stops_after_the_eos_token() -> None:
    model = random_model()
    prompt = random_tokens(1, 4)
    unstopped = greedy(model, prompt, n=10)[0, 4:].tolist()
    eos = unstopped[3]
    stops_after = unstopped.index(eos) + 1
    stopped = model.generate(prompt, max_new_tokens=10, do_sample=False, eos_token_id=eos)
    assert stopped[0, 4:].tolist() == unstopped[:stops_after]


def test_finished_rows_emit_padding_while_others_continue() -> None:
    model = random_model()
    prompt = random_tokens(2, 4)
    unstopped = greedy(model, prompt, n=8)[:, 4:]
    eos = int(unstopped[0, 1])
    assert eos not in unstopped[1].tolist(), "pick prompts whose second row never emits the first row's EOS"
    first_eos = unstopped[0].tolist().index(eos)

    stopped = model.generate(prompt, max_new_tokens=8, do_sample=False, eos_token_id=eos)[:, 4:]
    assert torch.equal(stopped[1], unstopped[1])
    assert torch.equal(stopped[0, : first_eos + 1], unstopped[0, : first_eos + 1])
    assert bool((stopped[0, first_eos + 1 :] == eos).all()), "without a tokenizer the filler is the EOS token"


def test_generation_stops_early_when_every_row_has_finished() -> None:
    model = random_model()
    prompt = random_tokens(1, 4)
    eos = int(greedy(model, prompt, n=1)[0, -1])
    assert model.generate(prompt, max_new_tokens=10, do_sample=False, eos_token_id=eos).shape == (1, 5)


def test_stop_at_eos_without_an_eos_token_raises_input_error() -> None:
    with pytest.raises(InputError, match="eos_token_id"):
        random_model().generate(random_tokens(1, 3), max_new_tokens=2)


def test_filler_after_eos_is_the_tokenizers_pad_token() -> None:
    model = model_with_tokenizer()
    prompt = model.to_tokens(["The cat", "Hello world, the dog sat"], padding_side="left")
    eos = int(greedy(model, prompt, n=1)[0, -1])
    output = model.generate(prompt, max_new_tokens=4, do_sample=False, eos_token_id=eos, return_type="tokens")
    first_row_new = output[0, prompt.shape[1] :].tolist()
    assert eos != model.pad_token_id and len(first_row_new) > 1
    assert first_row_new == [eos] + [model.pad_token_id] * (len(first_row_new) - 1)


# -- inputs and outputs -----------------------------------------------------------------------


def test_prompt_and_new_tokens_longer_than_n_ctx_raise_before_running() -> None:
    model = random_model(n_ctx=10)
    [hook] = model.add_hook("hook_embed", lambda activation, hook: None)
    with pytest.raises(InputError, match="n_ctx"):
        model.generate(random_tokens(1, 6), max_new_tokens=6, stop_at_eos=False)
    assert hook.calls == 0
    model.reset_hooks()
    # The 5th new token is sampled from position 10 and never fed back: it fits.
    assert greedy(model, random_tokens(1, 6), n=5).shape == (1, 11)


def test_right_padded_prompts_raise_input_error() -> None:
    tokens, mask = left_padded_batch()
    with pytest.raises(InputError, match="left"):
        greedy(random_model(), tokens, attention_mask=mask.flip(-1))


@pytest.mark.parametrize(
    ("prompt_shape", "output_shape"), [((5,), (9,)), ((1, 5), (1, 9)), ((3, 5), (3, 9))], ids=["1d", "2d", "batch"]
)
def test_token_input_returns_tokens_of_the_same_rank(prompt_shape: tuple[int, ...], output_shape: tuple) -> None:
    prompt = random_tokens(1, 15).flatten()[: torch.Size(prompt_shape).numel()].reshape(prompt_shape)
    assert greedy(random_model(), prompt, n=4).shape == output_shape


def test_string_input_returns_a_string_that_starts_with_the_prompt() -> None:
    model = model_with_tokenizer()
    prompt = "When Mary and John went to the store,"
    output = model.generate(prompt, max_new_tokens=6, do_sample=False, stop_at_eos=False)
    tokens = model.generate(prompt, max_new_tokens=6, do_sample=False, stop_at_eos=False, return_type="tokens")
    n_prompt = model.to_tokens(prompt).shape[1]
    assert isinstance(output, str)
    assert tokens.shape == (1, n_prompt + 6)
    assert output == prompt + model.to_string(tokens[0, n_prompt:])


def test_string_input_with_no_new_tokens_round_trips() -> None:
    model = model_with_tokenizer()
    prompt = "The quick brown fox"
    assert model.generate(prompt, max_new_tokens=0) == prompt


def test_list_of_strings_returns_each_prompt_continued_without_padding_or_bos() -> None:
    model = model_with_tokenizer()
    prompts = ["The cat", "Hello world, the dog sat on the"]
    outputs = model.generate(prompts, max_new_tokens=3, do_sample=False, stop_at_eos=False)
    assert isinstance(outputs, list) and len(outputs) == 2
    for prompt, output in zip(prompts, outputs, strict=True):
        alone = model.generate(prompt, max_new_tokens=3, do_sample=False, stop_at_eos=False)
        assert output == alone
        assert output.startswith(prompt) and len(output) > len(prompt)


def test_return_type_str_decodes_token_input() -> None:
    model = model_with_tokenizer()
    prompt = model.to_tokens("The quick brown", prepend_bos=False)
    output = model.generate(prompt, max_new_tokens=2, do_sample=False, stop_at_eos=False, return_type="str")
    assert isinstance(output, list) and output[0].startswith("The quick brown")


def test_string_input_with_attention_mask_raises_input_error() -> None:
    model = model_with_tokenizer()
    with pytest.raises(InputError, match="attention_mask"):
        model.generate("The cat", attention_mask=torch.ones(1, 3, dtype=torch.long))


def test_generated_tokens_can_run_through_the_model_with_gradients() -> None:
    model = random_model()
    output = greedy(model, random_tokens(1, 4), n=3)
    model(output, return_type="loss").backward()
    assert model.embed.W_E.grad is not None


# -- model state, hooks, progress -------------------------------------------------------------


def test_generation_runs_in_eval_mode_and_restores_training_mode() -> None:
    model = random_model().train()
    modes: list[bool] = []
    with model.hooks(fwd_hooks=[("hook_embed", lambda activation, hook: modes.append(model.training))]):
        greedy(model, random_tokens(1, 3), n=3)
    assert modes == [False, False, False]
    assert model.training


def test_hooks_see_attention_patterns_whose_key_length_grows() -> None:
    model = random_model()
    shapes: list[tuple[int, int]] = []

    def record(pattern: torch.Tensor, hook: object) -> None:
        shapes.append((pattern.shape[-2], pattern.shape[-1]))  # (query_pos, key_pos)

    with model.hooks(fwd_hooks=[("blocks.0.attn.hook_pattern", record)]):
        greedy(model, random_tokens(1, 4), n=4)
    assert shapes == [(4, 4), (1, 5), (1, 6), (1, 7)]


def test_progress_bar_is_shown_only_when_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    model = random_model()
    greedy(model, random_tokens(1, 3), n=3)
    assert capsys.readouterr().err == ""
    greedy(model, random_tokens(1, 3), n=3, verbose=True)
    assert "3/3" in capsys.readouterr().err
