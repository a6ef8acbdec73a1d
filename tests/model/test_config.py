"""TransformerConfig: defaults derived from sizes, and clear errors for sizes that do not fit."""

from __future__ import annotations

import pytest

from circuitlab import ConfigError, TransformerConfig


def small(**overrides) -> TransformerConfig:
    values = dict(n_layers=2, d_model=32, n_ctx=16, d_vocab=50, n_heads=4)
    values.update(overrides)
    return TransformerConfig(**values)


def test_derived_sizes() -> None:
    cfg = small()
    assert (cfg.d_head, cfg.d_mlp, cfg.d_vocab_out) == (8, 128, 50)


def test_attention_only_has_no_mlp() -> None:
    assert small(attn_only=True).d_mlp is None
    with pytest.raises(ConfigError, match="attention-only"):
        small(attn_only=True, d_mlp=64)


def test_d_model_not_divisible_by_heads_names_both_sizes() -> None:
    with pytest.raises(ConfigError, match=r"d_model \(30\) is not divisible by n_heads \(4\)"):
        small(d_model=30)
    assert small(d_model=30, d_head=8).d_head == 8


@pytest.mark.parametrize("field", ["n_layers", "d_model", "n_ctx", "d_vocab", "n_heads"])
def test_sizes_must_be_positive_integers(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        small(**{field: 0})


@pytest.mark.parametrize(
    ("field", "value"),
    [("normalization_type", "BatchNorm"), ("act_fn", "tanh"), ("positional_embedding_type", "alibi")],
)
def test_unknown_feature_lists_the_valid_choices(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match="choose one of"):
        small(**{field: value})


def test_dict_round_trip_and_unknown_fields() -> None:
    cfg = small(act_fn="relu", seed=3)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown config fields"):
        TransformerConfig.from_dict({**cfg.to_dict(), "n_layer": 2})


def test_n_params_counts_attention_and_mlp_matrices() -> None:
    assert small().n_params == 2 * (4 * 32 * 32 + 2 * 32 * 128)


@pytest.mark.parametrize(
    ("field", "value"), [("d_head", 8.0), ("d_mlp", 1.5), ("d_mlp", -4), ("d_vocab_out", 0), ("d_vocab_out", -3)]
)
def test_derived_sizes_must_be_positive_integers_too(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        small(**{field: value})


@pytest.mark.parametrize(("field", "value"), [("eps", "x"), ("eps", 0.0), ("init_range", -1.0), ("eps", True)])
def test_eps_and_init_range_must_be_positive_numbers(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        small(**{field: value})


def test_a_dict_without_required_fields_names_them() -> None:
    with pytest.raises(ConfigError, match=r"lacks the required fields \['n_heads'\]"):
        TransformerConfig.from_dict({"n_layers": 1, "d_model": 8, "n_ctx": 4, "d_vocab": 5})
