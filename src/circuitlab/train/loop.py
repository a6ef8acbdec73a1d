"""The training loop for circuitlab models: AdamW, warm-up + cosine, clipping, evaluation, checkpoints.

Batches come from ``batch_for_step(step)``, a pure function of the step number, so a run resumed
from a checkpoint sees exactly the batches the uninterrupted run would have seen and ends with the
same weights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from circuitlab.data.files import write_bytes_atomic
from circuitlab.errors import CheckpointError
from circuitlab.model import HookedTransformer
from circuitlab.train.checkpoint import LATEST, TrainingState, load_checkpoint, save_checkpoint
from circuitlab.train.config import TrainingConfig
from circuitlab.train.schedule import warmup_cosine

Batch = Any
LossFunction = Callable[[HookedTransformer, Batch, torch.dtype], torch.Tensor]
EvalFunction = Callable[[HookedTransformer], dict[str, float]]


@dataclass
class TrainResult:
    model: HookedTransformer
    steps: int
    train_losses: list[float] = field(default_factory=list)  # one per step run in this call
    evaluations: list[dict[str, Any]] = field(default_factory=list)  # {"step": s, **metrics}
    wall_seconds: float = 0.0  # this call
    total_wall_seconds: float = 0.0  # every call that contributed to the checkpoint, resumes included
    resumed_from: int | None = None


def next_token_loss(model: HookedTransformer, tokens: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Mean cross-entropy of every next token, computed in ``dtype``."""
    logits = model(tokens)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).to(dtype), tokens[:, 1:].flatten())


def make_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices (``W_*``) only."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (decay if name.rsplit(".", 1)[-1].startswith("W_") else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def train(
    model: HookedTransformer,
    batch_for_step: Callable[[int], Batch],
    config: TrainingConfig,
    out_dir: Path | str | None = None,
    *,
    loss_fn: LossFunction = next_token_loss,
    eval_fn: EvalFunction | None = None,
    tokens_per_batch: int | None = None,
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``config.steps`` steps (or until ``stop_after`` steps are done).

    With ``out_dir``: ``checkpoint.pt`` every ``checkpoint_every`` steps and at the end (plus
    ``checkpoint-step{N}.pt`` for ``keep_checkpoints``), ``metrics.jsonl`` (one JSON object per step
    and per evaluation) and ``loss_curve.html``; with ``resume`` an existing checkpoint is continued.
    """
    out = Path(out_dir) if out_dir is not None else None
    optimizer = make_optimizer(model, config)
    loss_dtype = torch.float64 if config.loss_dtype == "float64" else torch.float32
    result = TrainResult(model=model, steps=0)
    start_step = 0
    earlier_seconds = 0.0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / LATEST).exists():
            state = load_checkpoint(out / LATEST)
            _check_same_settings(out / LATEST, json.loads(state.extra.get("training_config", "{}")), config)
            model.load_state_dict(state.model)
            optimizer.load_state_dict(state.optimizer)
            torch.set_rng_state(state.rng_state)
            start_step = result.resumed_from = state.step
            earlier_seconds = float(state.extra.get("wall_seconds", 0.0))
        _truncate_metrics(out / "metrics.jsonl", start_step)
    end_step = config.steps if stop_after is None else min(config.steps, stop_after)

    model.train()
    started = time.perf_counter()
    bar = tqdm(range(start_step, end_step), initial=start_step, total=config.steps, disable=not progress, unit="step")
    for step in bar:
        lr = config.lr * warmup_cosine(step, config.steps, config.warmup_steps, config.min_lr_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_started = time.perf_counter()
        loss = loss_fn(model, batch_for_step(step), loss_dtype)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_value = loss.item()
        result.train_losses.append(loss_value)
        record: dict[str, Any] = {"step": step + 1, "train_loss": loss_value, "lr": lr}
        if tokens_per_batch:
            record["tokens_per_second"] = tokens_per_batch / (time.perf_counter() - step_started)
            bar.set_postfix(loss=f"{loss_value:.4f}", tok_s=f"{record['tokens_per_second']:.0f}")
        else:
            bar.set_postfix(loss=f"{loss_value:.4f}")
        done = step + 1
        if eval_fn is not None and (done % config.eval_every == 0 or done == config.steps):
            record["eval"] = _evaluate(model, eval_fn)
            result.evaluations.append({"step": done, **record["eval"]})
        if out is not None:
            _append_metrics(out / "metrics.jsonl", record)
            if done % config.checkpoint_every == 0 or done == end_step or done in config.keep_checkpoints:
                wall_seconds = earlier_seconds + time.perf_counter() - started
                _checkpoint(out, model, optimizer, done, config, wall_seconds)
    result.steps = end_step
    result.wall_seconds = time.perf_counter() - started
    result.total_wall_seconds = earlier_seconds + result.wall_seconds
    model.eval()
    if out is not None:
        write_loss_curve(out / "metrics.jsonl", out / "loss_curve.html")
    return result


def _check_same_settings(path: Path, saved: dict[str, Any], config: TrainingConfig) -> None:
    """Resuming under other settings (say a shorter schedule) would not continue the same run."""
    current = json.loads(json.dumps(config.to_dict()))  # tuples as JSON lists, like the saved copy
    changed = sorted(key for key in current if saved.get(key) != current[key])
    if changed:
        details = ", ".join(f"{key}: {saved.get(key)!r} -> {current[key]!r}" for key in changed)
        raise CheckpointError(
            f"{path} was written by a run with other settings ({details}); resuming would not reproduce "
            "either run: train into another folder, or start afresh (resume=False / --no-resume)"
        )


def _evaluate(model: HookedTransformer, eval_fn: EvalFunction) -> dict[str, float]:
    model.eval()
    # Evaluation must not consume the training random stream, or resuming would diverge.
    rng_state = torch.get_rng_state()
    try:
        with torch.no_grad():
            return {key: float(value) for key, value in eval_fn(model).items()}
    finally:
        torch.set_rng_state(rng_state)
        model.train()


def _checkpoint(
    out: Path,
    model: HookedTransformer,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: TrainingConfig,
    wall_seconds: float,
) -> None:
    state = TrainingState(
        step=step,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        rng_state=torch.get_rng_state(),
        extra={
            "training_config": json.dumps(config.to_dict()),
            "model_config": model.cfg.to_json(),
            "wall_seconds": wall_seconds,
        },
    )
    save_checkpoint(out / LATEST, state)
    if step in config.keep_checkpoints:
        save_checkpoint(out / f"checkpoint-step{step}.pt", state)


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (a killed run may have gone further)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            break  # a line cut short by the kill: nothing after it is trustworthy
    write_bytes_atomic(path, "".join(f"{line}\n" for line in kept).encode("utf-8"))


def read_metrics(path: Path | str) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_loss_curve(metrics_path: Path, html_path: Path) -> None:
    """A self-contained plotly HTML page with the training loss and every evaluation metric over steps."""
    import plotly.graph_objects as go

    records = read_metrics(metrics_path)
    figure = go.Figure()
    figure.add_scatter(x=[r["step"] for r in records], y=[r["train_loss"] for r in records], name="train loss")
    evals = [r for r in records if "eval" in r]
    for key in sorted({k for r in evals for k in r["eval"]}):
        points = [(r["step"], r["eval"][key]) for r in evals if key in r["eval"]]
        figure.add_scatter(x=[s for s, _ in points], y=[v for _, v in points], name=key, mode="lines+markers")
    figure.update_layout(title="Training curves", xaxis_title="step", yaxis_title="value", template="plotly_white")
    write_bytes_atomic(html_path, figure.to_html(include_plotlyjs=True, full_html=True).encode("utf-8"))
