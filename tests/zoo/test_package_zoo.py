"""The zoo shipped inside the package: every model's card parses and every shipped file matches its hash.

These run over whatever the package holds (possibly nothing yet); they never skip.
"""

from __future__ import annotations

from pathlib import Path

import torch

import circuitlab
from circuitlab.zoo import card, list_models, verify_model, weights_dir
from circuitlab.zoo.layout import CARD_FILE, TOKENIZERS_FOLDER


def shipped_files() -> set[str]:
    """Every file under the package's weights folder, relative to it (cards excluded: they hold the hashes)."""
    root = weights_dir()
    if not root.is_dir():
        return set()
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file() and path.name != CARD_FILE}


def test_the_zoo_lives_inside_the_package() -> None:
    assert weights_dir() == Path(circuitlab.__file__).parent / "zoo" / "weights"


def test_every_shipped_model_card_parses_and_its_files_verify() -> None:
    for entry in list_models():
        model_card = verify_model(entry.name)
        assert model_card.name == entry.name
        assert model_card.summary.strip(), f"{entry.name}'s card has no summary"
        assert model_card.dtype in ("float16", "bfloat16", "float32")


def test_every_shipped_file_is_vouched_for_by_a_card() -> None:
    vouched = {path for entry in list_models() for path in card(entry.name).files}
    assert shipped_files() - vouched == set(), "files in zoo/weights that no card lists (stale or half-published)"


def test_every_shipped_folder_is_a_model_or_a_shared_tokenizer() -> None:
    root = weights_dir()
    folders = {path.name for path in root.iterdir() if path.is_dir()} if root.is_dir() else set()
    assert folders - {entry.name for entry in list_models()} <= {TOKENIZERS_FOLDER}


def test_every_shipped_model_loads_and_gives_finite_logits() -> None:
    for entry in list_models():
        model = circuitlab.load(entry.name)
        tokens = torch.arange(min(8, model.cfg.n_ctx)).remainder(model.cfg.d_vocab).unsqueeze(0)
        with torch.no_grad():
            assert torch.isfinite(model(tokens)).all(), entry.name
