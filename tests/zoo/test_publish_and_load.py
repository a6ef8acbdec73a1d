"""publish writes a model into a zoo folder; load gives back the same model, in float32 unless asked."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from circuitlab import HookedTransformer
from circuitlab.data import as_hugging_face, train_tokenizer
from circuitlab.data.files import sha256_file
from circuitlab.errors import ConfigError
from circuitlab.zoo import card, load, publish
from tests.zoo.conftest import TOKENIZER, sample_tokens, stand_in_card, stand_in_model

PublishStandIn = Callable[..., HookedTransformer]


def logits(model: HookedTransformer) -> torch.Tensor:
    with torch.no_grad():
        return model(sample_tokens())


def rounded_to(model: HookedTransformer, dtype: torch.dtype) -> HookedTransformer:
    """A float32 copy of ``model`` whose weights went through ``dtype`` and back."""
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for param in rounded.parameters():
            param.copy_(param.to(dtype).float())
    return rounded


def test_float32_round_trip_gives_identical_logits(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    model = publish_stand_in("m", dtype=torch.float32)
    assert torch.equal(logits(load("m", root=zoo)), logits(model))


def test_float16_round_trip_gives_the_fp16_rounded_models_logits(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    model = publish_stand_in("m", dtype=torch.float16)
    loaded = logits(load("m", root=zoo))
    assert torch.equal(loaded, logits(rounded_to(model, torch.float16)))
    torch.testing.assert_close(loaded, logits(model), atol=5e-3, rtol=5e-3)


def test_load_gives_float32_whatever_the_stored_dtype(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m", dtype=torch.float16)
    assert load("m", root=zoo).dtype == torch.float32


def test_load_casts_to_the_dtype_asked_for(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m", dtype=torch.float16)
    assert load("m", root=zoo, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_weights_are_stored_in_the_published_dtype(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    from safetensors.torch import load_file

    publish_stand_in("m", dtype=torch.float16)
    assert {t.dtype for t in load_file(zoo / "m" / "model.safetensors").values()} == {torch.float16}
    assert card("m", root=zoo).dtype == "float16"


def test_load_keeps_the_per_head_layout(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    model = publish_stand_in("m")
    assert load("m", root=zoo).blocks[0].attn.W_Q.stride() == model.blocks[0].attn.W_Q.stride()


def test_loaded_model_tokenizes_like_the_published_one(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    model = publish_stand_in("m")
    loaded = load("m", root=zoo)
    assert loaded.to_str_tokens("When Mary and John") == model.to_str_tokens("When Mary and John")
    assert loaded.cfg.model_name == "m"


def test_a_model_without_a_tokenizer_loads_without_one(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    model = publish_stand_in("numbers", with_tokenizer=False, dtype=torch.float32)
    loaded = load("numbers", root=zoo)
    assert loaded.tokenizer is None
    assert torch.equal(logits(loaded), logits(model))


def test_publish_fills_in_hashes_dtype_size_and_date(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    model = publish_stand_in("m")
    published = card("m", root=zoo)
    assert published.files == {path: sha256_file(zoo / path) for path in published.files}
    assert set(published.files) == {
        "m/config.json",
        "m/model.safetensors",
        f"_tokenizers/{TOKENIZER}/tokenizer.json",
        f"_tokenizers/{TOKENIZER}/tokenizer_config.json",
    }
    assert published.n_parameters == sum(p.numel() for p in model.parameters())
    assert published.created != "" and published.summary == "m: a random stand-in"


def test_publish_returns_the_card_it_wrote(zoo: Path) -> None:
    returned = publish(stand_in_model(), "m", stand_in_card("m"), weights_root=zoo)
    assert returned == card("m", root=zoo)


def test_config_json_is_circuitlabs_own_format(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    config = json.loads((zoo / "m" / "config.json").read_text())
    assert config["format"] == "circuitlab"
    assert config["n_layers"] == 2


def test_models_that_share_a_tokenizer_store_it_once(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("first", seed=0)
    second = publish_stand_in("second", seed=1)
    assert sorted(p.name for p in (zoo / "_tokenizers").iterdir()) == [TOKENIZER]
    assert not list((zoo / "second").glob("tokenizer*"))
    assert load("second", root=zoo).to_str_tokens("hello world") == second.to_str_tokens("hello world")


def test_a_model_can_name_a_tokenizer_the_zoo_already_holds(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("first")
    publish(stand_in_model(1, with_tokenizer=False), "second", stand_in_card("second"), weights_root=zoo)
    assert load("second", root=zoo).tokenizer is not None


def test_tokenizer_can_come_from_a_folder(zoo: Path, tmp_path: Path) -> None:
    model = stand_in_model(with_tokenizer=True)
    model.tokenizer.save_pretrained(tmp_path / "tokenizer")
    bare = stand_in_model(with_tokenizer=False)
    publish(bare, "m", stand_in_card("m"), tokenizer_dir=tmp_path / "tokenizer", weights_root=zoo)
    assert load("m", root=zoo).to_tokens("hello world").tolist() == model.to_tokens("hello world").tolist()


def test_a_tokenizer_from_a_folder_and_the_same_one_on_a_model_are_stored_once(zoo: Path, tmp_path: Path) -> None:
    stand_in_model().tokenizer.save_pretrained(tmp_path / "tokenizer")
    bare = stand_in_model(with_tokenizer=False)
    first = publish(bare, "first", stand_in_card("first"), tokenizer_dir=tmp_path / "tokenizer", weights_root=zoo)
    second = publish(stand_in_model(seed=1), "second", stand_in_card("second"), weights_root=zoo)
    shared = f"_tokenizers/{TOKENIZER}/tokenizer.json"
    assert second.files[shared] == first.files[shared] == sha256_file(zoo / shared)


def test_a_model_whose_tokenizer_differs_from_the_zoos_copy_is_refused(
    zoo: Path, publish_stand_in: PublishStandIn
) -> None:
    publish_stand_in("first")
    other = stand_in_model(seed=1)
    other.tokenizer = as_hugging_face(train_tokenizer(["abc abd abe"] * 3, vocab_size=280))
    with pytest.raises(ConfigError, match=r"model's tokenizer differs from the zoo's tokenizer 'tiny-320'"):
        publish(other, "second", stand_in_card("second"), weights_root=zoo)


def test_a_tokenizer_that_nothing_provides_is_refused(zoo: Path) -> None:
    with pytest.raises(ConfigError, match=r"names the tokenizer 'tiny-320', which the zoo does not hold yet"):
        publish(stand_in_model(with_tokenizer=False), "m", stand_in_card("m"), weights_root=zoo)


def test_published_files_are_readable_by_everyone(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m", checkpoints={1: stand_in_model(seed=1).state_dict()})
    modes = {path.name: path.stat().st_mode & 0o777 for path in zoo.rglob("*") if path.is_file()}
    assert all(mode & 0o444 == 0o444 for mode in modes.values()), modes


def test_a_different_tokenizer_cannot_replace_one_another_model_uses(
    zoo: Path, publish_stand_in: PublishStandIn, tmp_path: Path
) -> None:
    publish_stand_in("first")
    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer.json").write_text(train_tokenizer(["abc abd abe"] * 3, vocab_size=280).to_str())
    with pytest.raises(ConfigError, match=r"different tokenizer named 'tiny-320', used by \['first'\]"):
        publish(stand_in_model(), "second", stand_in_card("second"), tokenizer_dir=other, weights_root=zoo)


def test_a_card_naming_no_tokenizer_refuses_a_model_that_has_one(zoo: Path) -> None:
    with pytest.raises(ConfigError, match="names no tokenizer"):
        publish(stand_in_model(), "m", stand_in_card("m", with_tokenizer=False), weights_root=zoo)


def test_card_name_must_match_the_published_name(zoo: Path) -> None:
    with pytest.raises(ConfigError, match="the card is for 'other'"):
        publish(stand_in_model(), "m", stand_in_card("other"), weights_root=zoo)


@pytest.mark.parametrize("bad_name", ["Upper", "_tokenizers", "a/b", ".hidden", ""])
def test_publish_refuses_names_that_are_not_plain_folder_names(zoo: Path, bad_name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid zoo name"):
        publish(stand_in_model(), bad_name, stand_in_card(bad_name), weights_root=zoo)


def test_weights_that_overflow_float16_are_refused(zoo: Path) -> None:
    model = stand_in_model()
    with torch.no_grad():
        model.unembed.b_U[3] = 1e6
    with pytest.raises(ConfigError, match=r"unembed\.b_U .*not finite in torch\.float16.*dtype=torch\.float32"):
        publish(model, "m", stand_in_card("m"), weights_root=zoo)
    assert list(zoo.iterdir()) == []  # no staging folder left behind
