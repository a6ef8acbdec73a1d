"""`circuitlab train` runs a recipe, resumes, and reports bad input in one readable line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from circuitlab.cli.main import app


def test_train_runs_a_short_recipe_and_prints_its_metrics(tmp_path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--recipe", "modadd-113", "--steps", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "modadd-113: 3 steps" in result.output
    assert '"test_accuracy"' in result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]


def test_an_unknown_recipe_is_one_line_with_the_valid_names() -> None:
    result = CliRunner().invoke(app, ["train", "--recipe", "gpt5"])
    assert result.exit_code == 2
    assert "no recipe named 'gpt5'" in result.output and "attn-only-2l" in result.output
