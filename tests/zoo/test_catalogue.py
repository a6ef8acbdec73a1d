"""list_models, card and unknown names: what the zoo holds and how a mistyped name is answered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from circuitlab import HookedTransformer
from circuitlab.errors import ModelNotFoundError
from circuitlab.zoo import ZooEntry, card, list_models, load

PublishStandIn = Callable[..., HookedTransformer]


def test_an_empty_zoo_lists_no_models(zoo: Path) -> None:
    assert list_models(root=zoo) == []


def test_list_models_gives_each_name_summary_and_size_on_disk(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("zeta")
    publish_stand_in("alpha", with_tokenizer=False)
    entries = list_models(root=zoo)
    assert [entry.name for entry in entries] == ["alpha", "zeta"]
    alpha = entries[0]
    assert alpha == ZooEntry(
        name="alpha",
        summary="alpha: a random stand-in",
        size_bytes=sum(path.stat().st_size for path in (zoo / "alpha").rglob("*") if path.is_file()),
    )
    assert alpha.size_bytes > (zoo / "alpha" / "model.safetensors").stat().st_size


def test_list_models_skips_the_shared_tokenizers_and_staging_folders(
    zoo: Path, publish_stand_in: PublishStandIn
) -> None:
    publish_stand_in("m")
    (zoo / ".m.publishing-0123").mkdir()
    assert [entry.name for entry in list_models(root=zoo)] == ["m"]


def test_card_reads_the_published_card(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    assert card("m", root=zoo).recipe == "stand-in"


def test_unknown_name_suggests_the_nearest_and_lists_the_zoo(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("attn-only-2l")
    publish_stand_in("modular-addition", with_tokenizer=False)
    expected = r"did you mean 'attn-only-2l'\?.*holds: attn-only-2l, modular-addition"
    with pytest.raises(ModelNotFoundError, match=expected):
        load("attn-only-21", root=zoo)


def test_unknown_name_in_an_empty_zoo_says_how_to_fill_it(zoo: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"empty.*circuitlab train --recipe"):
        card("attn-only-2l", root=zoo)


def test_a_path_is_not_a_zoo_name(zoo: Path, publish_stand_in: PublishStandIn) -> None:
    publish_stand_in("m")
    with pytest.raises(ModelNotFoundError):
        card("../weights/m", root=zoo)
