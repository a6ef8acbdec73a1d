"""The zoo's training recipes: everything needed to reproduce each shipped model from scratch.

A recipe fixes the model config, the training settings, the data (a pure function of the step, so
runs resume exactly) and the metrics that go on the model card. ``circuitlab train --recipe NAME``
runs one; ``--steps N`` shortens it for a smoke test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Int
from torch import Tensor

from circuitlab.analysis import induction_scores, previous_token_scores
from circuitlab.data import PreparedData, modular_addition_dataset, prepare_stdlib_data, sample_batches
from circuitlab.data.synthetic.modular_arithmetic import ModularAdditionData
from circuitlab.errors import ConfigError
from circuitlab.model import HookedTransformer, TransformerConfig
from circuitlab.train.config import TrainingConfig
from circuitlab.train.loop import Batch, EvalFunction, LossFunction, next_token_loss


@dataclass
class RecipeRun:
    """What a recipe hands the training loop, plus what goes on the card."""

    model: HookedTransformer
    batch_for_step: Callable[[int], Batch]
    loss_fn: LossFunction
    eval_fn: EvalFunction
    tokens_per_batch: int
    data_description: dict[str, Any]
    tokenizer_dir: str | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    training: TrainingConfig
    prepare: Callable[[Recipe], RecipeRun]
    card_metrics: Callable[[HookedTransformer, RecipeRun], dict[str, float]]
    model_fields: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def with_steps(self, steps: int) -> Recipe:
        """The same recipe cut to ``steps`` (warm-up and kept checkpoints shrink to fit): a smoke test."""
        training = dataclasses.replace(
            self.training,
            steps=steps,
            warmup_steps=min(self.training.warmup_steps, steps),
            eval_every=min(self.training.eval_every, steps),
            checkpoint_every=min(self.training.checkpoint_every, steps),
            keep_checkpoints=tuple(s for s in self.training.keep_checkpoints if s <= steps),
        )
        return dataclasses.replace(self, training=training)


# -- text models: the standard-library corpus with repeated spans mixed in --------------------------

TEXT_CONTEXT = 128
TEXT_BATCH = 32
# Share of training rows in which a span of the row (4-48 tokens) is copied to a random later
# offset. Natural code alone forms induction heads only after tens of millions of tokens on this
# CPU (shared/TRAINING-NOTES.md); with every row carrying a repeat, a 2-layer model went through
# the phase change after ~10 M tokens. Varied lengths and offsets rule out a positional shortcut.
REPEAT_SHARE = 1.0
REPEAT_SPAN = (4, 48)


def with_repeated_spans(tokens: Int[Tensor, "batch pos"], seed_key: list[int], share: float) -> Tensor:
    """Copy a random span of some rows to a random later, non-overlapping offset (position 0, BOS, untouched)."""
    tokens = tokens.clone()
    rng = np.random.default_rng(seed_key)
    n_ctx = tokens.shape[1]
    for row in range(tokens.shape[0]):
        if rng.random() >= share:
            continue
        length = int(rng.integers(REPEAT_SPAN[0], min(REPEAT_SPAN[1], (n_ctx - 2) // 2) + 1))
        start = int(rng.integers(1, n_ctx - 2 * length))
        repeat = int(rng.integers(start + length, n_ctx - length + 1))
        tokens[row, repeat : repeat + length] = tokens[row, start : start + length]
    return tokens


def _prepare_text(recipe: Recipe) -> RecipeRun:
    data: PreparedData = prepare_stdlib_data()
    tokenizer = data.tokenizer()
    cfg = TransformerConfig(
        d_vocab=len(tokenizer), n_ctx=TEXT_CONTEXT, model_name=recipe.name, seed=recipe.training.seed,
        **recipe.model_fields,
    )  # fmt: skip
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    bos = tokenizer.bos_token_id
    seed = recipe.training.seed
    train_sampler = sample_batches(data.stream("train"), TEXT_BATCH, TEXT_CONTEXT, seed=seed, bos_token=bos)
    validation = sample_batches(data.stream("validation"), 32, TEXT_CONTEXT, seed=12345, bos_token=bos).batch(0)

    def batch_for_step(step: int) -> Tensor:
        # Its own random stream (seed + 1), independent of the sampler's (seed).
        return with_repeated_spans(train_sampler.batch(step), [seed + 1, step], REPEAT_SHARE)

    def eval_fn(model: HookedTransformer) -> dict[str, float]:
        with torch.inference_mode():
            return {"validation_loss": float(model(validation, return_type="loss")), **_head_metrics(model)}

    return RecipeRun(
        model=model,
        batch_for_step=batch_for_step,
        loss_fn=next_token_loss,
        eval_fn=eval_fn,
        tokens_per_batch=TEXT_BATCH * TEXT_CONTEXT,
        data_description={
            "corpus": "CPython standard library sources and pydoc topics",
            "python_version": data.corpus.manifest["python_version"],
            "corpus_sha256": data.corpus.sha256,
            "train_bytes": data.corpus.manifest["splits"]["train"]["bytes"],
            "tokenizer": "byte-level BPE, 4096 tokens, trained on the corpus's train split",
            "repeated_span_share": REPEAT_SHARE,
            "repeated_span_lengths": list(REPEAT_SPAN),
        },
        tokenizer_dir=str(data.tokenizer_path.parent),
    )


def _head_metrics(model: HookedTransformer) -> dict[str, float]:
    induction = induction_scores(model, bos_token=model.bos_token_id if model.tokenizer else None).scores
    random_text = torch.randint(1, model.cfg.d_vocab, (8, 64), generator=torch.Generator().manual_seed(0))
    previous = previous_token_scores(model, random_text).scores
    return {"induction_score_max": float(induction.max()), "previous_token_score_max": float(previous.max())}


def _text_card_metrics(model: HookedTransformer, run: RecipeRun) -> dict[str, float]:
    metrics = run.eval_fn(model)
    metrics.update(repeated_sequence_losses(model))
    return metrics


def repeated_sequence_losses(model: HookedTransformer, length: int = 50, n_batch: int = 16) -> dict[str, float]:
    """Loss on the first and the second copy of ``[BOS] x x`` random tokens: induction makes the second lower."""
    from circuitlab.data.synthetic import repeated_random_tokens

    bos = model.bos_token_id if model.tokenizer else 0
    tokens = repeated_random_tokens(n_batch, length, model.cfg.d_vocab, seed=99, bos_token=bos)
    with torch.inference_mode():
        losses = model(tokens, return_type="loss", loss_per_token=True)  # (B, 2L): predicts tokens 1..2L
    return {
        "first_half_loss": float(losses[:, : length - 1].mean()),
        "repeated_half_loss": float(losses[:, length:].mean()),
    }


# -- modular addition: the grokking model ------------------------------------------------------------

MODADD_P = 113


def modadd_loss(model: HookedTransformer, batch: tuple[Tensor, Tensor], dtype: torch.dtype) -> Tensor:
    """Cross-entropy of the answer read at the last position (``=``), in ``dtype`` (float64: see TrainingConfig)."""
    tokens, labels = batch
    logits = model(tokens)[:, -1]
    return F.cross_entropy(logits.to(dtype), labels)


def _prepare_modadd(recipe: Recipe) -> RecipeRun:
    data: ModularAdditionData = modular_addition_dataset(MODADD_P, train_fraction=0.3, seed=recipe.training.seed)
    cfg = TransformerConfig(
        d_vocab=data.d_vocab, d_vocab_out=MODADD_P, n_ctx=3, model_name=recipe.name, seed=recipe.training.seed,
        **recipe.model_fields,
    )  # fmt: skip
    model = HookedTransformer(cfg)
    train_batch = (data.train_tokens, data.train_labels)

    def eval_fn(model: HookedTransformer) -> dict[str, float]:
        return modadd_metrics(model, data)

    return RecipeRun(
        model=model,
        batch_for_step=lambda step: train_batch,  # full batch every step
        loss_fn=modadd_loss,
        eval_fn=eval_fn,
        tokens_per_batch=3 * len(data.train_labels),
        data_description={
            "task": f"a + b mod {MODADD_P}, input tokens [a, b, =] with = as token {MODADD_P}",
            "train_pairs": len(data.train_labels),
            "test_pairs": len(data.test_labels),
            "split_seed": recipe.training.seed,
        },
    )


def modadd_metrics(model: HookedTransformer, data: ModularAdditionData) -> dict[str, float]:
    metrics = {}
    with torch.inference_mode():
        for split, tokens, labels in (
            ("train", data.train_tokens, data.train_labels),
            ("test", data.test_tokens, data.test_labels),
        ):
            logits = model(tokens)[:, -1].double()
            metrics[f"{split}_loss"] = float(F.cross_entropy(logits, labels))
            metrics[f"{split}_accuracy"] = float((logits.argmax(-1) == labels).double().mean())
    return metrics


def _modadd_card_metrics(model: HookedTransformer, run: RecipeRun) -> dict[str, float]:
    return run.eval_fn(model)


# -- the recipes ---------------------------------------------------------------------------------------

_ATTN_ONLY = dict(d_model=128, n_heads=4, attn_only=True)
_GELU = dict(d_model=128, n_heads=4, d_mlp=512, act_fn="gelu")
_TEXT_NOTES = (
    "Every training row has one span of 4-48 tokens copied to a random later offset: on natural code alone "
    "the induction phase change does not come within a CPU budget (tens of millions of tokens). "
    "Trained on 1 CPU thread; the recipe reproduces the weights bit for bit at the same thread count."
)
_TEXT_TRAINING = dict(steps=8000, lr=5e-3, betas=(0.9, 0.95), weight_decay=0.1, warmup_steps=100, eval_every=100,
                      checkpoint_every=500)  # fmt: skip


def _text_recipe(name: str, summary: str, model_fields: dict[str, Any], steps: int | None = None) -> Recipe:
    training = TrainingConfig(**{**_TEXT_TRAINING, **({"steps": steps} if steps else {})})
    return Recipe(
        name=name,
        summary=summary,
        training=training,
        prepare=_prepare_text,
        card_metrics=_text_card_metrics,
        model_fields=model_fields,
        notes=_TEXT_NOTES,
    )


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        _text_recipe(
            "attn-only-1l",
            "1-layer attention-only model on Python code: no induction head can form (needs two layers)",
            dict(n_layers=1, **_ATTN_ONLY),
        ),
        _text_recipe(
            "attn-only-2l",
            "2-layer attention-only model on Python code with a previous-token head and an induction head",
            dict(n_layers=2, **_ATTN_ONLY),
        ),
        # Half the attention-only budget: these are for MLP studies, not the induction phase change.
        _text_recipe(
            "gelu-1l",
            "1-layer transformer with a GELU MLP on Python code, for neuron and direct-logit studies",
            dict(n_layers=1, **_GELU),
            steps=4000,
        ),
        _text_recipe(
            "gelu-2l", "2-layer transformer with GELU MLPs on Python code", dict(n_layers=2, **_GELU), steps=4000
        ),
        Recipe(
            name="modadd-113",
            summary="1-layer transformer that grokked a + b mod 113 from 30% of the pairs",
            # Nanda et al.'s setting; float64 loss (float32 round-off at tiny losses stalled grokking here).
            training=TrainingConfig(
                steps=5000,
                lr=3e-3,
                betas=(0.9, 0.98),
                weight_decay=1.0,
                warmup_steps=10,
                min_lr_fraction=1.0,
                grad_clip=None,
                eval_every=100,
                checkpoint_every=250,
                loss_dtype="float64",
                keep_checkpoints=tuple(range(250, 5001, 250)),
            ),
            prepare=_prepare_modadd,
            notes=(
                "Full-batch AdamW on 30% of the 12,769 pairs with weight decay 1.0 and a float64 loss. "
                "checkpoint_steps holds the weights every 250 steps, for studying the circuit as it forms."
            ),
            card_metrics=_modadd_card_metrics,
            # init_range 1/sqrt(d_model) as in Nanda et al.: GPT-2's 0.02 started too small to memorise fast,
            # and train and test accuracy crawled up together, with no grokking, for 2000 steps.
            model_fields=dict(
                n_layers=1,
                d_model=128,
                n_heads=4,
                d_mlp=512,
                act_fn="relu",
                normalization_type=None,
                init_range=128**-0.5,
            ),
        ),
    )
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"no recipe named {name!r}; recipes: {', '.join(RECIPES)}") from None


@dataclass
class RecipeResult:
    recipe: Recipe
    run: RecipeRun
    train_result: Any  # TrainResult
    metrics: dict[str, float]
    out_dir: str


def run_recipe(
    name: str, steps: int | None = None, out_dir: str | None = None, resume: bool = True, progress: bool = True
) -> RecipeResult:
    """Train the recipe's model (resuming from ``out_dir`` when possible) and measure its card metrics."""
    from circuitlab.train.loop import train

    recipe = get_recipe(name)
    if steps is not None:
        recipe = recipe.with_steps(steps)
    run = recipe.prepare(recipe)
    out = out_dir or f"runs/{name}"
    result = train(
        run.model, run.batch_for_step, recipe.training, out, loss_fn=run.loss_fn, eval_fn=run.eval_fn,
        tokens_per_batch=run.tokens_per_batch, resume=resume, progress=progress,
    )  # fmt: skip
    return RecipeResult(recipe, run, result, recipe.card_metrics(run.model, run), out)


def publish_recipe_result(result: RecipeResult, weights_root: str | None = None) -> Any:
    """Put a finished recipe run into the zoo, with a card built from what the run measured."""
    import json
    from pathlib import Path

    from circuitlab.train.checkpoint import LATEST, load_checkpoint
    from circuitlab.train.loop import read_metrics
    from circuitlab.zoo import ModelCard, publish

    recipe, run, out = result.recipe, result.run, Path(result.out_dir)
    latest = load_checkpoint(out / LATEST)
    if latest.step < recipe.training.steps:
        raise ConfigError(
            f"{recipe.name} stopped at step {latest.step} of {recipe.training.steps}; finish the run before publishing"
        )
    records = read_metrics(out / "metrics.jsonl")
    checkpoints = {
        step: load_checkpoint(out / f"checkpoint-step{step}.pt").model for step in recipe.training.keep_checkpoints
    }
    metrics = result.metrics
    card = ModelCard(
        name=recipe.name,
        summary=recipe.summary,
        recipe=recipe.name,
        training_data=json.dumps(run.data_description, sort_keys=True),
        tokens_seen=latest.step * run.tokens_per_batch,
        steps=latest.step,
        wall_time_seconds=round(float(latest.extra.get("wall_seconds", 0.0)), 1),
        train_loss=records[-1]["train_loss"],
        validation_loss=metrics.get("validation_loss", metrics.get("test_loss")),
        metrics=metrics,
        notes=recipe.notes,
        tokenizer=STDLIB_TOKENIZER if run.tokenizer_dir else None,
    )
    return publish(run.model, recipe.name, card, tokenizer_dir=run.tokenizer_dir, checkpoints=checkpoints,
                   weights_root=weights_root)  # fmt: skip


STDLIB_TOKENIZER = "stdlib-4096"
