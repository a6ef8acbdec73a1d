"""The training loop: schedules, weight-decay groups, metrics, and resuming to the same result."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from circuitlab import CheckpointError, ConfigError
from circuitlab.train import TrainingConfig, load_checkpoint, make_optimizer, read_metrics, warmup_cosine
from tests.train import tiny_run

STEPS = 24


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, tiny_run.run(str(out), STEPS)


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "tokens_per_second"} for r in records]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_training_lowers_the_loss(uninterrupted) -> None:
    _, result = uninterrupted
    assert result.train_losses[-1] < result.train_losses[0] - 0.3


def test_warmup_then_cosine() -> None:
    assert warmup_cosine(0, 100, 10, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 10, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(100, 100, 10, 0.1) == pytest.approx(0.1)


def test_weight_decay_only_on_weight_matrices() -> None:
    from circuitlab import HookedTransformer, TransformerConfig

    model = HookedTransformer(TransformerConfig(**tiny_run.MODEL_CONFIG))
    decayed, plain = make_optimizer(model, TrainingConfig(steps=1, weight_decay=0.5)).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decayed["weight_decay"] == 0.5 and plain["weight_decay"] == 0.0
    assert all(".W_" in "." + names[id(p)] for p in decayed["params"])
    assert {names[id(p)] for p in plain["params"]} >= {"blocks.0.attn.b_Q", "blocks.0.ln1.w", "unembed.b_U"}


def test_metrics_checkpoints_and_curve_are_written(uninterrupted) -> None:
    out, _ = uninterrupted
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert [r["step"] for r in records if "eval" in r] == [10, 20, 24]
    assert load_checkpoint(out / "checkpoint.pt").step == STEPS
    assert load_checkpoint(out / "checkpoint-step8.pt").step == 8
    assert "plotly" in (out / "loss_curve.html").read_text()[:100_000].lower()


def test_resume_after_a_stop_gives_the_same_weights(uninterrupted, tmp_path) -> None:
    out, full = uninterrupted
    first = tiny_run.run(str(tmp_path), STEPS, stop_after=13)
    assert first.steps == 13
    resumed = tiny_run.run(str(tmp_path), STEPS)
    assert resumed.resumed_from == 13
    assert_same_weights(resumed.model.state_dict(), full.model.state_dict())
    assert comparable(read_metrics(tmp_path / "metrics.jsonl")) == comparable(read_metrics(out / "metrics.jsonl"))


def test_resume_after_kill_9_gives_the_same_weights(uninterrupted, tmp_path) -> None:
    out, full = uninterrupted
    command = [sys.executable, tiny_run.__file__, str(tmp_path), str(STEPS), "0.1"]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            checkpoint = tmp_path / "checkpoint.pt"
            if checkpoint.exists() and load_checkpoint(checkpoint).step >= 8:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the training process wrote no checkpoint in 60 s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = load_checkpoint(tmp_path / "checkpoint.pt").step
    assert killed_at < STEPS, "the run finished before it was killed: the test proved nothing"
    resumed = tiny_run.run(str(tmp_path), STEPS)
    assert resumed.resumed_from == killed_at
    assert_same_weights(resumed.model.state_dict(), full.model.state_dict())
    assert comparable(read_metrics(tmp_path / "metrics.jsonl")) == comparable(read_metrics(out / "metrics.jsonl"))


def test_a_damaged_checkpoint_is_named(tmp_path) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch) -> None:
    tiny_run.run(str(tmp_path), 12, stop_after=8)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def exploding_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        tiny_run.run(str(tmp_path), 12)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_bad_settings_are_errors() -> None:
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainingConfig(steps=10, warmup_steps=20)
    with pytest.raises(ConfigError, match="unknown training settings"):
        TrainingConfig.from_dict({"steps": 3, "learning_rate": 1.0})


def test_resuming_under_other_settings_is_refused(tmp_path) -> None:
    tiny_run.run(str(tmp_path), 12, stop_after=8)
    with pytest.raises(CheckpointError, match=r"other settings \(steps: 12 -> 20\)"):
        tiny_run.run(str(tmp_path), 20)
