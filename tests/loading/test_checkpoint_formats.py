"""The ways a GPT-2 checkpoint can be stored all load to the same model: pickled, sharded, headless."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import GPT2Model

from circuitlab.loading import from_pretrained, from_pretrained_no_processing


@pytest.fixture(scope="module")
def reference(hf_checkpoint: Any) -> Any:
    return from_pretrained_no_processing(hf_checkpoint.folder)


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(0, 320, (2, 16), generator=torch.Generator().manual_seed(0))


def assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


def test_pytorch_model_bin_in_the_original_gpt2_layout_loads(
    hf_checkpoint: Any, reference: Any, tmp_path: Path
) -> None:
    # The gpt2 repositories' pytorch_model.bin has no "transformer." prefix and carries each layer's
    # causal-mask buffers (attn.bias, attn.masked_bias), which are not weights.
    folder = Path(shutil.copytree(hf_checkpoint.folder, tmp_path / "bin"))
    state = {name.removeprefix("transformer."): t for name, t in load_file(folder / "model.safetensors").items()}
    n_ctx = hf_checkpoint.model.config.n_positions
    for layer in range(hf_checkpoint.model.config.n_layer):
        state[f"h.{layer}.attn.bias"] = torch.ones(1, 1, n_ctx, n_ctx).tril()
        state[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    assert_same_weights(from_pretrained_no_processing(folder), reference)


def test_sharded_safetensors_load(hf_checkpoint: Any, reference: Any, tmp_path: Path) -> None:
    folder = tmp_path / "sharded"
    hf_checkpoint.model.save_pretrained(folder, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").is_file()
    assert len(list(folder.glob("model-*.safetensors"))) > 1
    assert_same_weights(from_pretrained_no_processing(folder), reference)


def test_a_headless_gpt2_model_checkpoint_loads_with_the_tied_unembedding(
    hf_checkpoint: Any, reference: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "headless"
    hf_checkpoint.model.transformer.save_pretrained(folder)
    model = from_pretrained_no_processing(folder)
    assert model.cfg.original_architecture == "GPT2Model"
    assert_same_weights(model, reference)


def test_headless_hidden_states_match(hf_checkpoint: Any, tokens: torch.Tensor, tmp_path: Path) -> None:
    folder = tmp_path / "headless"
    hf_checkpoint.model.transformer.save_pretrained(folder)
    hf = GPT2Model.from_pretrained(folder).eval()
    model = from_pretrained_no_processing(folder)
    with torch.no_grad():
        expected = hf(tokens).last_hidden_state
        _, cache = model.run_with_cache(tokens, names_filter="ln_final.hook_normalized")
    torch.testing.assert_close(cache["ln_final.hook_normalized"], expected, atol=1e-4, rtol=0)


def test_loaded_attention_weights_keep_the_per_head_memory_layout(hf_checkpoint: Any) -> None:
    fresh = from_pretrained_no_processing(hf_checkpoint.folder)
    attn = fresh.blocks[0].attn
    n_heads, _, d_head = attn.W_Q.shape
    for W in (attn.W_Q, attn.W_K, attn.W_V):
        assert W.stride() == (d_head, n_heads * d_head, 1)
        assert isinstance(W, torch.nn.Parameter)


def test_dtype_casts_after_processing_in_float32(hf_checkpoint: Any, tokens: torch.Tensor) -> None:
    in_float32 = from_pretrained(hf_checkpoint.folder)
    in_bfloat16 = from_pretrained(hf_checkpoint.folder, dtype="bfloat16")
    assert {p.dtype for p in in_bfloat16.parameters()} == {torch.bfloat16}
    for name, param in in_bfloat16.state_dict().items():
        assert torch.equal(param, in_float32.state_dict()[name].to(torch.bfloat16)), name
    assert in_bfloat16.blocks[0].attn.W_Q.stride() == in_float32.blocks[0].attn.W_Q.stride()
