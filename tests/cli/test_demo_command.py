"""`circuitlab demo` prints the measured head roles."""

from __future__ import annotations

from typer.testing import CliRunner

from circuitlab.cli.main import app


def test_demo_reports_the_two_heads() -> None:
    result = CliRunner().invoke(app, ["demo", "--steps", "400", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert "previous-token head" in result.output
    assert "held-out accuracy 100.0%" in result.output


def test_demo_rejects_a_nonsense_step_count() -> None:
    result = CliRunner().invoke(app, ["demo", "--steps", "0"])
    assert result.exit_code != 0
