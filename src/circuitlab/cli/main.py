"""``circuitlab`` command-line entry point."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="circuitlab",
    help="A workbench for mechanistic interpretability of transformers.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.callback()
def main() -> None:
    """circuitlab: hooked transformers, techniques and reports for mechanistic interpretability."""


@app.command()
def demo(
    steps: int = typer.Option(400, min=1, help="Training steps for the demo model."),
    seed: int = typer.Option(0, help="Random seed (same seed, same numbers)."),
) -> None:
    """Train a tiny model to name the previous two tokens, find which head looks where, and ablate each.

    Example: circuitlab demo --steps 400 --seed 1
    """
    import torch

    from circuitlab.experiments import run_two_back_demo

    torch.set_num_threads(min(2, torch.get_num_threads()))
    console.print(
        "[bold]circuitlab demo[/]: a 1-layer, 2-head attention-only model learns to output "
        "(token i-1, token i-2) at every position i."
    )
    with console.status("training..."):
        result = run_two_back_demo(steps=steps, seed=seed)
    console.print(
        f"trained {result.train_steps} steps in {result.train_seconds:.1f} s; final loss "
        f"{result.final_train_loss:.3f}; held-out accuracy {result.accuracy:.1%} (chance {result.chance:.1%})"
    )
    table = Table(title="What each head of layer 0 does (from blocks.0.attn.hook_pattern and hook_z)")
    table.add_column("head")
    table.add_column("attention to i-1", justify="right")
    table.add_column("attention to i-2", justify="right")
    table.add_column("accuracy with head ablated", justify="right")
    for head, scores in enumerate(result.offset_scores):
        table.add_row(f"L0H{head}", f"{scores[1]:.2f}", f"{scores[2]:.2f}", f"{result.ablated_accuracy[head]:.1%}")
    console.print(table)
    previous, two_back = result.head_looking_back(1), result.head_looking_back(2)
    if previous == two_back:
        console.print("No clean split this time: one head leads on both offsets (try more --steps).")
        return
    console.print(
        f"L0H{previous} is a previous-token head and L0H{two_back} a two-back head. Ablating either leaves "
        f"about 1/{round(1 / result.chance**0.5)} accuracy: the model still knows the other token but must "
        "guess the one the ablated head supplied."
    )


@app.command()
def train(
    recipe: str = typer.Option(..., help="Zoo recipe: attn-only-1l, attn-only-2l, gelu-1l, gelu-2l, modadd-113."),
    steps: int = typer.Option(None, min=1, help="Stop after this many steps (a short run) instead of the recipe's."),
    out: str = typer.Option(None, help="Folder for checkpoints, metrics.jsonl and loss_curve.html [runs/RECIPE]."),
    resume: bool = typer.Option(True, help="Continue from the folder's checkpoint if there is one."),
    publish: bool = typer.Option(False, help="Put the finished model into the package's zoo (developers)."),
) -> None:
    """Train a zoo model from its recipe (resumable: rerun the same command after an interruption).

    Example: circuitlab train --recipe modadd-113 --steps 200
    """
    import json

    import torch

    from circuitlab.errors import CircuitlabError
    from circuitlab.train.recipes import publish_recipe_result, run_recipe

    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        result = run_recipe(recipe, steps=steps, out_dir=out, resume=resume)
        card = publish_recipe_result(result) if publish else None
    except CircuitlabError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    trained = result.train_result
    console.print(
        f"{recipe}: {trained.steps} steps, {trained.wall_seconds:.0f} s this run; outputs in {result.out_dir}/"
    )
    console.print(json.dumps(result.metrics, indent=2))
    if card is not None:
        console.print(f"published {card.name} to the zoo ({card.n_parameters:,} parameters, {card.dtype})")


if __name__ == "__main__":
    app()
