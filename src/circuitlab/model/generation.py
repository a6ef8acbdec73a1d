"""Text generation: pick the next token from the model's logits, append it, repeat.

``generate`` follows TransformerLens's ``HookedTransformer.generate``. Sampling is written as small
pure functions of the logits (``sample_next_token``, ``keep_top_k``, ``keep_top_p``) so each can be
checked alone; ``IncrementalDecoder`` owns the growing batch and its per-layer key/value cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from circuitlab.errors import InputError
from circuitlab.model.components import LayerKVCache

if TYPE_CHECKING:
    from circuitlab.model.hooked_transformer import HookedTransformer, ModelInput
    from circuitlab.model.tokenization import PaddingSide

GenerateReturnType = Literal["input", "str", "tokens"]
GeneratedOutput = str | list[str] | Int[Tensor, "batch pos"] | Int[Tensor, " pos"]


# -- sampling: pure functions of the logits ---------------------------------------------------


def keep_top_k(logits: Float[Tensor, "batch vocab"], top_k: int) -> Float[Tensor, "batch vocab"]:
    """Set every logit outside each row's ``top_k`` largest to ``-inf`` (exactly ``top_k`` survive)."""
    top_k = min(top_k, logits.shape[-1])
    kept = logits.topk(top_k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, kept.indices, kept.values)


def keep_top_p(logits: Float[Tensor, "batch vocab"], top_p: float) -> Float[Tensor, "batch vocab"]:
    """Nucleus filtering: keep the most likely tokens until their probability mass reaches ``top_p``.

    The most likely token is always kept, so a tiny ``top_p`` means greedy decoding.
    """
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    sorted_probs = sorted_logits.softmax(dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability of the more likely tokens
    sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.empty_like(logits).scatter(-1, order, sorted_logits)


def sample_next_token(
    logits: Float[Tensor, "batch vocab"],
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Int[Tensor, " batch"]:
    """One token id per row, drawn from ``softmax(logits / temperature)`` after top-k then top-p filtering.

    ``temperature=0`` picks the most likely token (greedy).
    """
    _check_sampling_options(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = keep_top_k(logits, top_k)
    if top_p is not None and top_p < 1:
        logits = keep_top_p(logits, top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]


def _check_sampling_options(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not (isinstance(temperature, int | float) and 0 <= temperature < float("inf")):
        raise InputError(f"temperature must be a finite number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise InputError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, int | float) and 0 < top_p <= 1):
        raise InputError(f"top_p must be in (0, 1] or None, got {top_p!r}")


# -- running the model one token at a time ----------------------------------------------------


class IncrementalDecoder:
    """A batch of left-padded sequences that grows by one token per row at a time.

    With ``use_past_kv_cache`` the first ``next_token_logits`` runs the whole prompt and keeps every
    layer's keys and values; later calls run only the tokens appended since. Without it, every call
    reruns the whole sequence (slower; the reference the cache must match).
    """

    def __init__(
        self,
        model: HookedTransformer,
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        use_past_kv_cache: bool = True,
    ) -> None:
        self.model = model
        self.tokens = tokens.to(model.device)
        mask = torch.ones_like(self.tokens) if attention_mask is None else attention_mask.to(model.device)
        self.attention_mask = mask.long()
        # Only a prompt with padding needs the mask; without one the model takes its faster path.
        self._has_padding = not bool(self.attention_mask.all())
        self.kv_cache: list[LayerKVCache] | None = None
        if use_past_kv_cache:
            self.kv_cache = LayerKVCache.empty_for(model, self.tokens.shape[0])
        self._n_unseen = self.tokens.shape[1]  # tokens at the end that the cache has not seen yet
        self._logits: Float[Tensor, "batch vocab"] | None = None

    def next_token_logits(self) -> Float[Tensor, "batch vocab"]:
        """The model's logits for the token after the current last one, ``[batch, d_vocab_out]``."""
        if self._logits is None:
            mask = self.attention_mask if self._has_padding else None
            if self.kv_cache is None:
                logits = self.model(self.tokens, attention_mask=mask)
            else:
                unseen = self.tokens[:, self.tokens.shape[1] - self._n_unseen :]
                logits = self.model(unseen, attention_mask=mask, past_kv_cache=self.kv_cache)
                self._n_unseen = 0
            self._logits = logits[:, -1]
        return self._logits

    def append(self, next_tokens: Int[Tensor, " batch"]) -> None:
        """Add one token at the end of every row."""
        self.tokens = torch.cat([self.tokens, next_tokens[:, None].to(self.tokens)], dim=1)
        self.attention_mask = F.pad(self.attention_mask, (0, 1), value=1)
        self._n_unseen += 1
        self._logits = None


# -- generate ---------------------------------------------------------------------------------


def generate(
    model: HookedTransformer,
    input: ModelInput,
    max_new_tokens: int = 10,
    *,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    stop_at_eos: bool = True,
    eos_token_id: int | list[int] | None = None,
    use_past_kv_cache: bool = True,
    prepend_bos: bool | None = None,
    padding_side: PaddingSide = "left",
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    seed: int | None = None,
    return_type: GenerateReturnType = "input",
    verbose: bool = False,
) -> GeneratedOutput:
    """Continue each prompt by up to ``max_new_tokens`` tokens; the result starts with the prompt.

    ``input``: a string, a list of strings (left-padded with a growing attention mask), or tokens
    ``[batch, pos]`` / ``[pos]`` (with an optional left-padding ``attention_mask``).
    ``return_type``: ``"input"`` (the same kind as the input), ``"str"`` (text without padding or the
    BOS that text input was given) or ``"tokens"`` (``[batch, prompt_pos + new]``, padding included).
    Greedy when ``do_sample=False`` or ``temperature=0``; otherwise sampled with ``temperature``,
    ``top_k`` and ``top_p`` (see ``sample_next_token``), reproducibly when ``seed`` is given.
    With ``stop_at_eos``, a row that emits ``eos_token_id`` (default: the tokenizer's EOS) is
    filled with padding afterwards, and generation stops once every row has finished.
    """
    if return_type not in ("input", "str", "tokens"):
        raise InputError(f"return_type must be 'input', 'str' or 'tokens', got {return_type!r}")
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    _check_sampling_options(temperature, top_k, top_p)
    if not do_sample:
        temperature = 0.0
    tokens, prompt_mask = _prompt_tokens(model, input, prepend_bos, padding_side, attention_mask)
    # The last new token is never fed back, so the model sees at most prompt + max_new_tokens - 1 positions.
    if tokens.shape[1] + max(max_new_tokens - 1, 0) > model.cfg.n_ctx:
        raise InputError(
            f"the prompt is {tokens.shape[1]} tokens (padding included) and max_new_tokens is {max_new_tokens}: "
            f"the model would have to read {tokens.shape[1] + max_new_tokens - 1} positions, more than its "
            f"context window (n_ctx={model.cfg.n_ctx}); shorten the prompt or ask for fewer tokens"
        )
    eos_ids = _eos_token_ids(model, eos_token_id) if stop_at_eos else None
    fill_id = model.pad_token_id if model.tokenizer is not None else (eos_ids[0] if eos_ids else 0)
    generator = None if seed is None else torch.Generator(device=model.device).manual_seed(seed)
    eos_ids_tensor = None if eos_ids is None else torch.tensor(eos_ids, device=model.device)

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            decoder = IncrementalDecoder(model, tokens, prompt_mask, use_past_kv_cache)
            finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=model.device)
            real_new = []  # per step: which rows emitted a real token (EOS included), not filler
            for _ in tqdm(range(max_new_tokens), desc="generating", disable=not verbose):
                next_tokens = sample_next_token(decoder.next_token_logits(), temperature, top_k, top_p, generator)
                if eos_ids_tensor is not None:
                    next_tokens = next_tokens.masked_fill(finished, fill_id)
                    real_new.append(~finished)
                    finished = finished | torch.isin(next_tokens, eos_ids_tensor)
                else:
                    real_new.append(torch.ones_like(finished))
                decoder.append(next_tokens)
                if bool(finished.all()):
                    break
    finally:
        model.train(was_training)
    # A clone made outside inference mode is an ordinary tensor, which a later forward pass with
    # gradients (run_with_cache, patching) can use; an inference-mode tensor would be refused there.
    output_tokens = decoder.tokens.clone()

    real_mask = torch.cat([prompt_mask.to(model.device).bool(), *(step[:, None] for step in real_new)], dim=1)
    return _format_output(model, input, output_tokens, real_mask, return_type, prepend_bos)


def _prompt_tokens(
    model: HookedTransformer,
    input: ModelInput,
    prepend_bos: bool | None,
    padding_side: PaddingSide,
    attention_mask: Tensor | None,
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Tokens and attention mask of the prompts, checked to be padded on the left only."""
    if isinstance(input, str | list):
        if attention_mask is not None:
            raise InputError("attention_mask is for token input; text gets its mask from the tokenizer")
        tokens, mask = model.tokenize(input, prepend_bos=prepend_bos, padding_side=padding_side)
    elif isinstance(input, Tensor) and input.dim() in (1, 2) and not input.dtype.is_floating_point:
        tokens = input if input.dim() == 2 else input[None]
        if attention_mask is None:
            mask = torch.ones_like(tokens, dtype=torch.long)
        else:
            mask = attention_mask if attention_mask.dim() == 2 else attention_mask[None]
            if mask.shape != tokens.shape:
                raise InputError(
                    f"attention_mask has shape {tuple(mask.shape)} but the tokens have shape {tuple(tokens.shape)}"
                )
            mask = mask.long()
    else:
        raise InputError("expected a string, a list of strings, or an integer tensor of tokens [batch, pos] or [pos]")
    if not bool(mask.any(dim=1).all()):
        raise InputError("every prompt needs at least one real token, but a row of the attention mask is all 0")
    if bool((mask[:, 1:] < mask[:, :-1]).any()):
        raise InputError(
            "generation appends new tokens at the end of each row, so padding must be on the left "
            "(padding_side='left', or an attention mask of 0s followed by 1s)"
        )
    return tokens, mask


def _eos_token_ids(model: HookedTransformer, eos_token_id: int | list[int] | None) -> list[int]:
    if eos_token_id is None:
        tokenizer = model.tokenizer
        if tokenizer is None or tokenizer.eos_token_id is None:
            raise InputError(
                "stop_at_eos=True needs an end-of-sequence token, but the model has no tokenizer that defines "
                "one; pass eos_token_id=... or stop_at_eos=False"
            )
        eos_token_id = int(tokenizer.eos_token_id)
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    d_vocab = model.cfg.d_vocab
    if not ids or not all(isinstance(i, int) and 0 <= i < d_vocab for i in ids):
        raise InputError(f"eos_token_id must be a token id (or a non-empty list of them) in [0, {d_vocab}), got {ids}")
    return ids


def _format_output(
    model: HookedTransformer,
    input: ModelInput,
    tokens: Int[Tensor, "batch pos"],
    real_mask: Tensor,
    return_type: GenerateReturnType,
    prepend_bos: bool | None,
) -> GeneratedOutput:
    """The generated batch in the kind the caller asked for (see ``generate``)."""
    one_dimensional = isinstance(input, Tensor) and input.dim() == 1
    if return_type == "input":
        return_type = "str" if isinstance(input, str | list) else "tokens"
    if return_type == "tokens":
        return tokens[0] if one_dimensional else tokens
    bos_added = isinstance(input, str | list) and (
        model.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
    )
    texts = []
    for row, keep in zip(tokens, real_mask, strict=True):
        ids = row[keep].tolist()
        texts.append(model.to_string(ids[1:] if bos_added else ids))
    return texts[0] if isinstance(input, str) or one_dimensional else texts  # type: ignore[return-value]
