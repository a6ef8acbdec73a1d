"""Activation patching: how much of a metric's clean-vs-corrupted difference one activation carries.

Denoising (``direction="denoise"``) runs the corrupted input with one clean activation patched in;
noising (``"noise"``) runs the clean input with one corrupted activation patched in. Each patch
gives one metric value; ``values`` rescales them so 0 is the receiving input's own run and 1 the
other input's run.

``activation_patching`` lays many patched copies of the receiving input along the batch axis of one
forward (each copy's patch written into its own rows by one hook per hook point), and starts each
chunk of copies at the lowest layer it patches, from the receiving run's residual stream: a patch
at layer ``l`` changes nothing below it. ``activation_patching_loop`` is the slow, obvious version
(one ``run_with_hooks`` per patch) that the tests check it against.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from circuitlab.analysis.results import LabelledResult
from circuitlab.errors import InputError
from circuitlab.model import HookedTransformer

Metric = Callable[[Float[Tensor, "rows pos vocab"]], Float[Tensor, " rows"]]
"""``metric(logits [rows, pos, vocab]) -> [rows]``: one value per row (a 0-dim value only when rows == 1)."""

Direction = Literal["denoise", "noise"]

RESIDUAL_TARGETS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
"""``blocks.{l}.hook_{target}``, ``[batch pos d_model]``: patched per layer (and position)."""
HEAD_TARGETS = ("z", "q", "k", "v", "result", "pattern")
"""``blocks.{l}.attn.hook_{target}``: patched per layer and head (and position; query position for pattern)."""
TARGETS = (*RESIDUAL_TARGETS, *HEAD_TARGETS, "blocks")
_MLP_TARGETS = ("resid_mid", "mlp_out")

ACTIVATION_BUDGET = 2**26
"""Float elements of live activations that the default ``max_batch`` allows one chunk (256 MiB in float32)."""


@dataclass
class PatchingResult(LabelledResult):
    """Normalised ``values`` (0 = receiving run, 1 = other run; NaN when both runs score the same).

    ``raw`` holds the metric of each patched run (mean over the prompts of a batch), with the same
    shape and axes as ``values``. ``clean_value`` and ``corrupted_value`` are the unpatched runs.
    """

    raw: Tensor
    clean_value: float
    corrupted_value: float
    target: str
    direction: Direction


@dataclass(frozen=True)
class _Patch:
    """Write the source activation into ``activation[:, *index]`` at ``hook_name`` (batch axis excluded from index)."""

    hook_name: str
    layer: int
    index: tuple[int | slice, ...]
    cell: tuple[int, ...]


@dataclass
class _Plan:
    patches: list[_Patch]
    shape: tuple[int, ...]
    axis_names: tuple[str, ...]
    axis_labels: tuple[list[str], ...]


def activation_patching(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"] | Int[Tensor, " pos"],
    corrupted_tokens: Int[Tensor, "batch pos"] | Int[Tensor, " pos"],
    metric: Metric,
    target: str = "resid_pre",
    per_position: bool = True,
    direction: Direction = "denoise",
    layers: Sequence[int] | None = None,
    max_batch: int | None = None,
    progress: bool = False,
) -> PatchingResult:
    """Patch every activation of the ``target`` family, one place at a time, and measure ``metric``.

    ``target``: ``resid_pre``, ``resid_mid``, ``resid_post``, ``attn_out``, ``mlp_out`` give axes
    ``(layer, pos)`` (``(layer,)`` when not ``per_position``); ``z``, ``q``, ``k``, ``v``,
    ``result``, ``pattern`` give ``(layer, head)`` (``(layer, head, pos)`` per position, the query
    position for ``pattern``); ``blocks`` gives ``(component, layer, pos)`` over resid_pre, attn_out
    and mlp_out. ``result`` turns on ``use_attn_result`` for the call and restores it after.

    ``metric`` gets logits ``[rows, pos, vocab]`` and must return ``[rows]``: a batch of B prompts
    runs as B rows per patched copy, and a patch's value is the mean over its B rows.
    ``layers`` restricts the sweep (default: all). ``max_batch`` caps the patched copies per forward;
    by default it is what fits ``ACTIVATION_BUDGET`` (a rough count of a forward's live activations).
    When the clean and corrupted runs score the same, ``values`` are NaN (``raw`` is still valid).
    """
    if max_batch is not None and max_batch < 1:
        raise InputError(f"max_batch must be at least 1 (patched copies per forward), got {max_batch}")
    with _prepared(model, clean_tokens, corrupted_tokens, metric, target, per_position, direction, layers) as setup:
        plan, receiving, source_activations, prefix, receiving_value, other_value = setup
        n_prompts = receiving.shape[0]
        chunk_size = max_batch if max_batch is not None else default_max_batch(model, receiving)
        raw = torch.empty(plan.shape)
        order = sorted(plan.patches, key=lambda patch: patch.layer)  # chunks then share a starting layer
        starts = range(0, len(order), chunk_size)
        for start in tqdm(starts, desc=f"patching {target}", disable=not progress):
            chunk = order[start : start + chunk_size]
            logits = _run_chunk(model, receiving, prefix, chunk, source_activations)
            values = _evaluate(metric, logits).view(len(chunk), n_prompts).mean(dim=1)
            for patch, value in zip(chunk, values.tolist(), strict=True):
                raw[patch.cell] = value
    return _result(plan, raw, receiving_value, other_value, target, direction)


def activation_patching_loop(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch pos"] | Int[Tensor, " pos"],
    corrupted_tokens: Int[Tensor, "batch pos"] | Int[Tensor, " pos"],
    metric: Metric,
    target: str = "resid_pre",
    per_position: bool = True,
    direction: Direction = "denoise",
    layers: Sequence[int] | None = None,
    max_batch: int | None = None,
    progress: bool = False,
) -> PatchingResult:
    """``activation_patching`` with one full forward per patch: slow and obvious, a reference for tests.

    ``max_batch`` is accepted for a matching signature and ignored.
    """
    with _prepared(model, clean_tokens, corrupted_tokens, metric, target, per_position, direction, layers) as setup:
        plan, receiving, source_activations, _, receiving_value, other_value = setup
        raw = torch.empty(plan.shape)
        for patch in tqdm(plan.patches, desc=f"patching {target}", disable=not progress):
            source = source_activations[patch.hook_name][(slice(None), *patch.index)]

            def write(activation: Tensor, hook: object, source: Tensor = source, patch: _Patch = patch) -> Tensor:
                activation = activation.clone()
                activation[(slice(None), *patch.index)] = source
                return activation

            logits = model.run_with_hooks(receiving, fwd_hooks=[(patch.hook_name, write)])
            raw[patch.cell] = float(_evaluate(metric, logits).mean())
    return _result(plan, raw, receiving_value, other_value, target, direction)


def default_max_batch(model: HookedTransformer, tokens: Int[Tensor, "batch pos"]) -> int:
    """How many patched copies of ``tokens`` fit ``ACTIVATION_BUDGET`` (at least one).

    Per row it counts a forward's largest live tensors: a few residual-sized ones, the MLP's
    hidden layer, attention scores and pattern, and the logits.
    """
    cfg = model.cfg
    n_prompts, n_pos = tokens.shape
    per_row = n_pos * (6 * cfg.d_model + 2 * (cfg.d_mlp or 0) + 3 * cfg.n_heads * n_pos + cfg.d_vocab_out)
    return max(1, ACTIVATION_BUDGET // (per_row * n_prompts))


# -- shared set-up -------------------------------------------------------------------------------


@contextlib.contextmanager
def _prepared(
    model: HookedTransformer,
    clean_tokens: Tensor,
    corrupted_tokens: Tensor,
    metric: Metric,
    target: str,
    per_position: bool,
    direction: Direction,
    layers: Sequence[int] | None,
) -> Iterator[tuple[_Plan, Tensor, dict[str, Tensor], list[Tensor], float, float]]:
    """Check the inputs, plan the patches and run both inputs once, inside inference mode.

    Yields ``(plan, receiving tokens, source activations by hook name, the receiving run's resid_pre
    per layer, receiving baseline, other baseline)``.
    """
    clean, corrupted = _check_tokens(clean_tokens, corrupted_tokens)
    if direction not in ("denoise", "noise"):
        raise InputError(f"direction must be 'denoise' (patch clean into corrupted) or 'noise', got {direction!r}")
    plan = _plan(model, target, per_position, layers, clean)
    receiving, source = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    with torch.inference_mode(), _attention_results(model, enabled=target == "result"):
        prefix_names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
        receiving_logits, receiving_cache = model.run_with_cache(receiving, names_filter=prefix_names)
        source_names = sorted({patch.hook_name for patch in plan.patches})
        source_logits, source_cache = model.run_with_cache(source, names_filter=source_names)
        yield (
            plan,
            receiving,
            {name: source_cache[name] for name in source_names},
            [receiving_cache[name] for name in prefix_names],
            float(_evaluate(metric, receiving_logits).mean()),
            float(_evaluate(metric, source_logits).mean()),
        )


def _check_tokens(clean: Tensor, corrupted: Tensor) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    for name, tokens in (("clean_tokens", clean), ("corrupted_tokens", corrupted)):
        if not isinstance(tokens, Tensor) or tokens.dim() not in (1, 2):
            shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise InputError(f"{name} must be token ids [batch, pos] or [pos], got {shape}")
    if clean.shape != corrupted.shape:
        raise InputError(
            f"clean_tokens {tuple(clean.shape)} and corrupted_tokens {tuple(corrupted.shape)} must have the same "
            "shape: patching swaps activations position by position"
        )
    if clean.dim() == 1:
        clean, corrupted = clean[None], corrupted[None]
    return clean, corrupted


def _plan(
    model: HookedTransformer,
    target: str,
    per_position: bool,
    layers: Sequence[int] | None,
    clean: Int[Tensor, "batch pos"],
) -> _Plan:
    """Every patch of the ``target`` family, each with its cell in the result grid."""
    cfg = model.cfg
    if target not in TARGETS:
        raise InputError(f"unknown patching target {target!r}; valid targets: {', '.join(TARGETS)}")
    if cfg.attn_only and target in _MLP_TARGETS:
        raise InputError(f"target {target!r} needs MLPs, but this model is attention-only (attn_only=True)")
    layers = list(range(cfg.n_layers)) if layers is None else [int(layer) for layer in layers]
    bad = [layer for layer in layers if not 0 <= layer < cfg.n_layers]
    if bad or not layers:
        raise InputError(f"layers must be a non-empty list of layer indices in [0, {cfg.n_layers}), got {layers}")
    n_pos = clean.shape[1]
    positions = list(range(n_pos)) if per_position else []
    layer_labels = [str(layer) for layer in layers]
    head_labels = [f"H{head}" for head in range(cfg.n_heads)]
    pos_labels = _position_labels(model, clean[0])
    patches: list[_Patch] = []

    if target in RESIDUAL_TARGETS or target == "blocks":
        block_components = ["resid_pre", "attn_out"] + ([] if cfg.attn_only else ["mlp_out"])
        components = block_components if target == "blocks" else [target]
        for c, component in enumerate(components):
            for i, layer in enumerate(layers):
                name = f"blocks.{layer}.hook_{component}"
                for p in positions or [None]:
                    index = () if p is None else (p,)
                    cell = (i,) if p is None else (i, p)
                    patches.append(_Patch(name, layer, index, (c, *cell) if target == "blocks" else cell))
        axis_names: tuple[str, ...] = ("layer", "pos") if per_position else ("layer",)
        axis_labels: tuple[list[str], ...] = (layer_labels, pos_labels) if per_position else (layer_labels,)
        if target == "blocks":
            axis_names, axis_labels = ("component", *axis_names), (components, *axis_labels)
    else:
        for i, layer in enumerate(layers):
            name = f"blocks.{layer}.attn.hook_{target}"
            for head in range(cfg.n_heads):
                for p in positions or [None]:
                    if target == "pattern":  # [head, query, key]
                        index: tuple[int | slice, ...] = (head,) if p is None else (head, p)
                    else:  # [pos, head, ...]
                        index = (slice(None), head) if p is None else (p, head)
                    patches.append(_Patch(name, layer, index, (i, head) if p is None else (i, head, p)))
        axis_names = ("layer", "head", "pos") if per_position else ("layer", "head")
        axis_labels = (layer_labels, head_labels, pos_labels) if per_position else (layer_labels, head_labels)
    shape = tuple(len(labels) for labels in axis_labels)
    return _Plan(patches, shape, axis_names, axis_labels)


def _position_labels(model: HookedTransformer, tokens: Int[Tensor, " pos"]) -> list[str]:
    """The string tokens of the (first) clean prompt, or ``"0".."n-1"`` without a tokenizer."""
    if model.tokenizer is None:
        return [str(p) for p in range(tokens.shape[0])]
    return list(model.to_str_tokens(tokens))  # type: ignore[arg-type]


@contextlib.contextmanager
def _attention_results(model: HookedTransformer, enabled: bool) -> Iterator[None]:
    """Turn on ``use_attn_result`` (so ``hook_result`` runs) for the block, then restore it."""
    before = model.cfg.use_attn_result
    model.cfg.use_attn_result = before or enabled
    try:
        yield
    finally:
        model.cfg.use_attn_result = before


# -- the batched run -----------------------------------------------------------------------------


def _run_chunk(
    model: HookedTransformer,
    receiving: Int[Tensor, "batch pos"],
    prefix: list[Float[Tensor, "batch pos d_model"]],
    chunk: list[_Patch],
    source_activations: dict[str, Tensor],
) -> Float[Tensor, "rows pos vocab"]:
    """Logits of ``len(chunk)`` copies of ``receiving`` (rows ``copy * batch + prompt``), copy i patched by chunk[i].

    The run starts at the lowest patched layer from the receiving run's residual stream there.
    """
    n_copies, n_prompts = len(chunk), receiving.shape[0]
    writes: dict[str, list[tuple[int, tuple[int | slice, ...]]]] = defaultdict(list)
    for copy, patch in enumerate(chunk):
        writes[patch.hook_name].append((copy, (slice(None), *patch.index)))

    def write_patches(activation: Tensor, hook: object) -> Tensor:
        name: str = hook.name  # type: ignore[attr-defined]
        source = source_activations[name]  # (B, ...)
        activation = activation.clone()  # contiguous, so the view below shares its memory
        copies = activation.view(n_copies, n_prompts, *activation.shape[1:])  # (N, B, ...)
        for copy, index in writes[name]:
            copies[copy][index] = source[index]
        return activation

    first_layer = min(patch.layer for patch in chunk)
    residual = prefix[first_layer].repeat(n_copies, 1, 1)  # (N * B, P, D)
    with model.hooks(fwd_hooks=[(name, write_patches) for name in writes]):
        return model(residual, start_at_layer=first_layer)


def _evaluate(metric: Metric, logits: Float[Tensor, "rows pos vocab"]) -> Float[Tensor, " rows"]:
    """The metric's value per row, or an ``InputError`` when it returns another shape."""
    rows = logits.shape[0]
    value = metric(logits)
    if not isinstance(value, Tensor):
        value = torch.tensor(value) if isinstance(value, int | float) else value
    if isinstance(value, Tensor) and value.dim() == 0 and rows == 1:
        value = value.reshape(1)
    if not isinstance(value, Tensor) or tuple(value.shape) != (rows,):
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise InputError(
            f"the metric returned {got} for logits of shape {tuple(logits.shape)}, but must return shape ({rows},): "
            "one value per row (patching runs many patched copies as rows of one batch; "
            "reduce over positions and vocabulary, not over rows)"
        )
    return value.detach().float().cpu()


def _result(
    plan: _Plan, raw: Tensor, receiving_value: float, other_value: float, target: str, direction: Direction
) -> PatchingResult:
    """Normalise ``raw`` so the receiving run is 0 and the other run 1 (NaN when the two runs tie)."""
    span = other_value - receiving_value
    values = (raw - receiving_value) / span if span != 0 else torch.full_like(raw, float("nan"))
    denoising = direction == "denoise"
    clean_value, corrupted_value = (other_value, receiving_value) if denoising else (receiving_value, other_value)
    return PatchingResult(
        values=values,
        axis_names=plan.axis_names,
        axis_labels=plan.axis_labels,
        raw=raw,
        clean_value=clean_value,
        corrupted_value=corrupted_value,
        target=target,
        direction=direction,
    )
