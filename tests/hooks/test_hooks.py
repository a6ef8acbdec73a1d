"""The hook API's contract: names, replacement, caching, and that nothing is left behind."""

from __future__ import annotations

import pytest
import torch

from circuitlab import (
    HookedTransformer,
    HookNameError,
    HookNotFiredError,
    HookShapeError,
    InputError,
    TransformerConfig,
)


@pytest.fixture(scope="module")
def model() -> HookedTransformer:
    cfg = TransformerConfig(n_layers=2, d_model=32, n_ctx=16, d_vocab=50, n_heads=4, seed=0)
    return HookedTransformer(cfg).eval()


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(1))


def attached_hooks(model: HookedTransformer) -> int:
    return sum(len(p.fwd_hooks) + len(p.bwd_hooks) for p in model.hook_dict.values())


def test_hook_names_follow_transformer_lens() -> None:
    model = HookedTransformer(TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=10, n_heads=2))
    assert model.hook_names == [
        "hook_embed",
        "hook_pos_embed",
        "blocks.0.hook_resid_pre",
        "blocks.0.ln1.hook_scale",
        "blocks.0.ln1.hook_normalized",
        "blocks.0.attn.hook_q",
        "blocks.0.attn.hook_k",
        "blocks.0.attn.hook_v",
        "blocks.0.attn.hook_attn_scores",
        "blocks.0.attn.hook_pattern",
        "blocks.0.attn.hook_z",
        "blocks.0.attn.hook_result",
        "blocks.0.hook_attn_out",
        "blocks.0.hook_resid_mid",
        "blocks.0.ln2.hook_scale",
        "blocks.0.ln2.hook_normalized",
        "blocks.0.mlp.hook_pre",
        "blocks.0.mlp.hook_post",
        "blocks.0.hook_mlp_out",
        "blocks.0.hook_resid_post",
        "ln_final.hook_scale",
        "ln_final.hook_normalized",
    ]


def test_attention_only_blocks_have_no_mlp_hooks() -> None:
    cfg = TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=10, n_heads=2, attn_only=True)
    names = HookedTransformer(cfg).hook_names
    assert not [name for name in names if "mlp" in name or "resid_mid" in name or "ln2" in name]


def test_caching_every_hook_does_not_change_the_output(model, tokens) -> None:
    plain = model(tokens)
    cached, cache = model.run_with_cache(tokens)
    assert torch.equal(plain, cached)
    assert set(cache.keys()) == set(model.hook_names) - {"blocks.0.attn.hook_result", "blocks.1.attn.hook_result"}


def test_forward_hook_replaces_the_activation(model, tokens) -> None:
    def zero_head_0(z, hook):
        z = z.clone()
        z[:, :, 0] = 0
        return z

    ablated = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", zero_head_0)])
    _, cache = model.run_with_cache(tokens)
    z = cache["blocks.1.attn.hook_z"].clone()
    z[:, :, 0] = 0
    attn = model.blocks[1].attn
    expected_attn_out = torch.einsum("bphd,hdm->bpm", z, attn.W_O) + attn.b_O
    expected_resid_mid = cache["blocks.1.hook_resid_pre"] + expected_attn_out
    with model.hooks(fwd_hooks=[("blocks.1.attn.hook_z", zero_head_0)]):
        _, ablated_cache = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_mid")
    torch.testing.assert_close(ablated_cache["blocks.1.hook_resid_mid"], expected_resid_mid)
    assert not torch.allclose(ablated, model(tokens))


def test_hook_that_returns_none_only_observes(model, tokens) -> None:
    seen = []
    out = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_pattern", lambda p, hook: seen.append(p))])
    assert torch.equal(out, model(tokens))
    assert seen[0].shape == (2, 4, 8, 8)


def test_hook_receives_its_hook_point_with_name(model, tokens) -> None:
    names = []
    model.run_with_hooks(
        tokens, fwd_hooks=[(lambda n: n.endswith("hook_scale"), lambda x, hook: names.append(hook.name))]
    )
    assert names == ["blocks.0.ln1.hook_scale", "blocks.0.ln2.hook_scale", "blocks.1.ln1.hook_scale",
                     "blocks.1.ln2.hook_scale", "ln_final.hook_scale"]  # fmt: skip


def test_hooks_are_removed_after_an_exception_inside_a_hook(model, tokens) -> None:
    def broken(x, hook):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_pre", lambda x, hook: None),
                                                ("blocks.1.hook_resid_pre", broken)])  # fmt: skip
    assert attached_hooks(model) == 0


def break_block_1(model: HookedTransformer, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Make block 1 raise mid-forward; the returned dict gets the hook points whose hooks had run by then."""
    seen: dict[str, list[str]] = {}

    def fail(*args, **kwargs):
        seen["ran"] = [p.name for p in model.hook_dict.values() if any(h.calls for h in p.fwd_hooks)]
        raise RuntimeError("block 1 failed")

    monkeypatch.setattr(model.blocks[1], "forward", fail)
    return seen


def test_run_with_hooks_removes_its_hooks_after_an_exception_inside_the_forward(model, tokens, monkeypatch) -> None:
    break_block_1(model, monkeypatch)
    calls = []
    with pytest.raises(RuntimeError, match="block 1 failed"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: calls.append(1))])
    assert calls  # the hook ran before the model failed
    assert attached_hooks(model) == 0


def test_run_with_cache_removes_its_hooks_after_an_exception_inside_the_forward(model, tokens, monkeypatch) -> None:
    seen = break_block_1(model, monkeypatch)
    with pytest.raises(RuntimeError, match="block 1 failed"):
        model.run_with_cache(tokens)
    assert "blocks.0.hook_resid_post" in seen["ran"]
    assert attached_hooks(model) == 0


def test_hooks_context_removes_its_hooks_after_an_exception_inside_the_forward(model, tokens, monkeypatch) -> None:
    break_block_1(model, monkeypatch)
    calls = []
    with (
        pytest.raises(RuntimeError, match="block 1 failed"),
        model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: calls.append(1))]),
    ):
        model(tokens)
    assert calls
    assert attached_hooks(model) == 0


def test_unknown_hook_name_suggests_the_three_nearest(model, tokens) -> None:
    with pytest.raises(HookNameError) as error:
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_patern", lambda x, hook: None)])
    message = str(error.value)
    assert "blocks.0.attn.hook_patern" in message
    assert "'blocks.0.attn.hook_pattern'" in message
    assert message.count("'blocks.") == 4  # the bad name and three suggestions
    assert attached_hooks(model) == 0


def test_unknown_name_in_cache_filter_is_an_error(model, tokens) -> None:
    with pytest.raises(HookNameError, match="hook_resid_pre"):
        model.run_with_cache(tokens, names_filter=["blocks.0.resid_pre"])


def test_hook_returning_a_different_shape_names_hook_and_shapes(model, tokens) -> None:
    with pytest.raises(HookShapeError) as error:
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: z[:, :, :2])])
    message = str(error.value)
    assert "blocks.0.attn.hook_z" in message
    assert "(2, 8, 2, 8)" in message and "(2, 8, 4, 8)" in message
    assert attached_hooks(model) == 0


def test_hook_returning_a_non_tensor_is_an_error(model, tokens) -> None:
    with pytest.raises(HookShapeError, match="returned int"):
        model.run_with_hooks(tokens, fwd_hooks=[("hook_embed", lambda x, hook: 3)])


def test_a_hook_that_never_fires_is_an_error(model, tokens) -> None:
    # hook_result only runs when cfg.use_attn_result is on.
    with pytest.raises(HookNotFiredError, match=r"blocks\.0\.attn\.hook_result.*use_attn_result = True"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_result", lambda x, hook: None)])
    with pytest.raises(HookNotFiredError, match="ln_final"):
        model.run_with_hooks(tokens, stop_at_layer=1, fwd_hooks=[("ln_final.hook_scale", lambda x, hook: None)])
    assert attached_hooks(model) == 0


def test_a_predicate_that_matches_no_hook_point_is_a_name_error(model, tokens) -> None:
    with pytest.raises(HookNameError, match=f"predicate matched none of the {len(model.hook_dict)} hook points"):
        model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_patern"), lambda x, hook: None)])
    with pytest.raises(HookNameError, match="predicate matched none"):
        model.add_hook(lambda n: n.endswith("hook_patern"), lambda x, hook: None)
    assert attached_hooks(model) == 0


def test_a_predicate_none_of_whose_points_fire_is_an_error_listing_them(model, tokens) -> None:
    with pytest.raises(HookNotFiredError) as error:
        model.run_with_hooks(tokens, fwd_hooks=[(lambda n: "hook_result" in n, lambda x, hook: None)])
    message = str(error.value)
    assert "'blocks.0.attn.hook_result', 'blocks.1.attn.hook_result'" in message
    assert "use_attn_result = True" in message
    assert attached_hooks(model) == 0


def test_a_predicate_whose_points_are_beyond_stop_at_layer_is_an_error(model, tokens) -> None:
    with (
        pytest.raises(HookNotFiredError, match=r"'ln_final\.hook_scale', 'ln_final\.hook_normalized'.*did not reach"),
        model.hooks(fwd_hooks=[(lambda n: n.startswith("ln_final"), lambda x, hook: None)]),
    ):
        model(tokens, stop_at_layer=1)
    assert attached_hooks(model) == 0


def test_a_predicate_is_satisfied_when_any_point_it_matched_fires(model, tokens) -> None:
    names = []
    model.run_with_hooks(
        tokens, stop_at_layer=1, fwd_hooks=[(lambda n: "resid_post" in n, lambda x, hook: names.append(hook.name))]
    )
    assert names == ["blocks.0.hook_resid_post"]


def test_an_explicitly_requested_cache_entry_that_never_fires_is_an_error(model, tokens) -> None:
    with pytest.raises(HookNotFiredError):
        model.run_with_cache(tokens, names_filter=["blocks.1.hook_resid_post"], stop_at_layer=1)


def test_a_cache_filter_predicate_that_matches_nothing_is_a_name_error(model, tokens) -> None:
    with pytest.raises(HookNameError, match="predicate matched none"):
        model.run_with_cache(tokens, names_filter=lambda n: "nothing" in n)
    assert attached_hooks(model) == 0


def test_a_cache_filter_predicate_takes_what_the_run_reaches(model, tokens) -> None:
    resid, cache = model.run_with_cache(tokens, names_filter=lambda n: "resid" in n, stop_at_layer=1)
    assert "blocks.0.hook_resid_post" in cache and "blocks.1.hook_resid_pre" not in cache
    torch.testing.assert_close(resid, cache["blocks.0.hook_resid_post"])


def test_caching_everything_takes_what_the_run_reaches(model, tokens) -> None:
    _, cache = model.run_with_cache(tokens, stop_at_layer=1)
    assert "blocks.0.hook_resid_post" in cache and "blocks.1.hook_resid_pre" not in cache


def test_names_filter_forms(model, tokens) -> None:
    _, one = model.run_with_cache(tokens, names_filter="hook_embed")
    _, several = model.run_with_cache(tokens, names_filter=["hook_embed", "ln_final.hook_scale"])
    _, predicate = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    assert list(one.keys()) == ["hook_embed"]
    assert set(several.keys()) == {"hook_embed", "ln_final.hook_scale"}
    assert set(predicate.keys()) == {"blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"}


def test_cache_is_detached_and_can_move_and_drop_the_batch_axis(model, tokens) -> None:
    _, cache = model.run_with_cache(tokens[:1], names_filter="blocks.0.hook_resid_post", remove_batch_dim=True,
                                    device="meta")  # fmt: skip
    activation = cache["blocks.0.hook_resid_post"]
    assert activation.shape == (8, 32) and not activation.requires_grad
    assert activation.device.type == "meta"


def test_remove_batch_dim_needs_a_batch_of_one(model, tokens) -> None:
    with pytest.raises(InputError, match="batch of one, but 'hook_embed' has batch size 2"):
        model.run_with_cache(tokens, remove_batch_dim=True)
    assert attached_hooks(model) == 0


def test_backward_hooks_see_the_gradient_of_the_activation(model, tokens) -> None:
    grads = {}
    with model.hooks(bwd_hooks=[("blocks.0.hook_resid_post", lambda g, hook: grads.setdefault("hook", g))]):
        _, cache = model.run_with_cache(tokens, names_filter="blocks.0.hook_resid_post")
        model(tokens, return_type="loss").backward()
    model.zero_grad()
    resid = cache["blocks.0.hook_resid_post"].clone().requires_grad_(True)
    replaced = model.run_with_hooks(
        tokens, return_type="loss", fwd_hooks=[("blocks.0.hook_resid_post", lambda x, hook: resid)]
    )
    (expected,) = torch.autograd.grad(replaced, resid)
    torch.testing.assert_close(grads["hook"], expected)
    assert attached_hooks(model) == 0


def test_backward_hook_returning_a_different_shape_names_hook_and_shapes(model, tokens) -> None:
    with (
        pytest.raises(HookShapeError) as error,
        model.hooks(bwd_hooks=[("blocks.0.hook_resid_post", lambda g, hook: g[:, :1])]),
    ):
        model(tokens, return_type="loss").backward()
    model.zero_grad()
    message = str(error.value)
    assert "backward hook on 'blocks.0.hook_resid_post'" in message
    assert "(2, 1, 32)" in message and "(2, 8, 32)" in message
    assert attached_hooks(model) == 0


def test_backward_hook_can_replace_the_gradient(model, tokens) -> None:
    with model.hooks(bwd_hooks=[("hook_embed", lambda g, hook: torch.zeros_like(g))]):
        model(tokens, return_type="loss").backward()
    assert torch.count_nonzero(model.embed.W_E.grad) == 0
    model.zero_grad()


def test_a_backward_hook_without_backward_is_an_error(model, tokens) -> None:
    with (
        pytest.raises(HookNotFiredError, match="backward"),
        model.hooks(bwd_hooks=[("hook_embed", lambda g, hook: None)]),
    ):
        model(tokens, return_type="loss")
    assert attached_hooks(model) == 0


@pytest.mark.parametrize(
    ("no_gradients", "cause"), [(torch.no_grad, "torch.no_grad"), (torch.inference_mode, "torch.inference_mode")]
)
def test_a_backward_hook_on_a_forward_without_gradients_names_the_cause(model, tokens, no_gradients, cause) -> None:
    with (
        pytest.raises(HookNotFiredError, match=f"'hook_embed'.*gradients were disabled.*{cause}"),
        model.hooks(bwd_hooks=[("hook_embed", lambda g, hook: None)]),
        no_gradients(),
    ):
        model(tokens, return_type="loss")
    assert attached_hooks(model) == 0


def test_a_backward_hook_where_nothing_requires_grad_names_the_cause(tokens) -> None:
    frozen = HookedTransformer(TransformerConfig(n_layers=1, d_model=16, n_ctx=8, d_vocab=50, n_heads=2))
    frozen.requires_grad_(False)
    with (
        pytest.raises(HookNotFiredError, match="did not require grad"),
        frozen.hooks(bwd_hooks=[(lambda n: n.endswith("resid_post"), lambda g, hook: None)]),
    ):
        frozen(tokens, return_type="loss")


def test_run_with_hooks_refuses_backward_hooks_it_would_remove_too_early(model, tokens) -> None:
    with pytest.raises(InputError, match=r"model\.hooks"):
        model.run_with_hooks(tokens, bwd_hooks=[("hook_embed", lambda g, hook: None)])


def test_run_with_cache_incl_bwd_stores_gradients(model, tokens) -> None:
    _, cache = model.run_with_cache(tokens, return_type="loss", incl_bwd=True,
                                       names_filter=["hook_embed", "blocks.1.hook_resid_post"])  # fmt: skip
    model.zero_grad()
    assert cache["hook_embed_grad"].shape == cache["hook_embed"].shape
    assert cache["blocks.1.hook_resid_post_grad"].abs().sum() > 0
    with pytest.raises(InputError, match="scalar"):
        model.run_with_cache(tokens, incl_bwd=True)
    assert attached_hooks(model) == 0


def test_a_backward_hook_removed_before_backward_stays_silent(model, tokens) -> None:
    calls = []
    with model.hooks(bwd_hooks=[("hook_embed", lambda g, hook: calls.append(1))], reset_hooks_end=True):
        loss = model(tokens, return_type="loss")
        loss.backward(retain_graph=True)
    loss.backward()  # the graph outlives the hook; the hook must not run again
    model.zero_grad()
    assert calls == [1]


def test_add_hook_persists_until_reset_and_permanent_hooks_survive_reset(model, tokens) -> None:
    calls = []
    model.add_hook("hook_embed", lambda x, hook: calls.append("temporary"))
    model.add_hook("hook_embed", lambda x, hook: calls.append("permanent"), is_permanent=True)
    model(tokens)
    model(tokens)
    model.reset_hooks()
    model(tokens)
    model.reset_hooks(including_permanent=True)
    model(tokens)
    assert calls == ["temporary", "permanent"] * 2 + ["permanent"]
    assert attached_hooks(model) == 0


def test_a_hook_direction_other_than_fwd_or_bwd_is_an_input_error(model) -> None:
    with pytest.raises(InputError, match="'fwd' or 'bwd'"):
        model.add_hook("hook_embed", lambda x, hook: None, dir="forward")  # type: ignore[arg-type]
    assert attached_hooks(model) == 0


def remember_in_ctx(x: torch.Tensor, hook) -> None:
    hook.ctx["seen"] = True


def test_hook_context_is_cleared_when_the_last_temporary_hook_is_removed(model, tokens) -> None:
    with model.hooks(fwd_hooks=[("hook_embed", remember_in_ctx)]):
        model(tokens)
        assert model.hook_dict["hook_embed"].ctx == {"seen": True}
    assert model.hook_dict["hook_embed"].ctx == {}


def test_hook_context_is_kept_while_another_hook_remains(model, tokens) -> None:
    model.add_hook("hook_embed", remember_in_ctx)
    (temporary,) = model.add_hook("hook_embed", lambda x, hook: None)
    model(tokens)
    temporary.remove()
    assert model.hook_dict["hook_embed"].ctx == {"seen": True}
    model.reset_hooks()
    assert model.hook_dict["hook_embed"].ctx == {}


def test_hooks_context_keeps_hooks_when_asked(model, tokens) -> None:
    with model.hooks(fwd_hooks=[("hook_embed", lambda x, hook: None)], reset_hooks_end=False):
        model(tokens)
    assert attached_hooks(model) == 1
    model.reset_hooks()
    assert attached_hooks(model) == 0
