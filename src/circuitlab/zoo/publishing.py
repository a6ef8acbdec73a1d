"""Publishing a trained model into the zoo: weights in a chosen dtype, config, shared tokenizer, card with hashes.

Everything is written to hidden staging folders first and renamed into place at the end, so a
publish that fails midway leaves the zoo as it was: the old model (if any) and its tokenizer stay.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from torch import Tensor

from circuitlab.data.files import sha256_file
from circuitlab.data.tokenizer import END_OF_TEXT, END_OF_TEXT_ID, hugging_face_config
from circuitlab.errors import ConfigError
from circuitlab.loading.checkpoint import CheckpointProblems, compare_with_model
from circuitlab.loading.own_format import FORMAT_MARKER, FORMAT_VERSION, move_folders_into_place
from circuitlab.model import HookedTransformer, TransformerConfig
from circuitlab.zoo import catalogue
from circuitlab.zoo.catalogue import Root, model_names
from circuitlab.zoo.layout import (
    CARD_FILE,
    CONFIG_FILE,
    TOKENIZER_FILES,
    WEIGHTS_FILE,
    check_name,
    checkpoint_file,
    entry_path,
    tokenizer_folder,
    tokenizer_path,
    zoo_root,
)
from circuitlab.zoo.model_card import CARD_VERSION, ModelCard

PUBLISHABLE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)

StateDict = Mapping[str, Tensor]


def publish(
    model: HookedTransformer,
    name: str,
    card: ModelCard,
    tokenizer_dir: str | os.PathLike[str] | None = None,
    checkpoints: Mapping[int, StateDict] | None = None,
    dtype: torch.dtype = torch.float16,
    weights_root: Root = None,
) -> ModelCard:
    """Write ``model`` into the zoo as ``name`` (replacing an earlier version) and return its completed card.

    ``card`` carries what the recipe knows; this fills in ``files`` (sha256 of every file), ``dtype``,
    ``n_parameters``, ``checkpoint_steps`` and ``created`` (today, unless set). If ``card.tokenizer``
    names a tokenizer, its ``tokenizer.json`` comes from ``tokenizer_dir``, else from ``model.tokenizer``,
    else from the zoo, which already holds it for another model. ``checkpoints`` maps training steps
    to state dicts of the same model, stored as its checkpoint series. Weights are stored in ``dtype``.
    ``weights_root`` is the zoo folder to write into (default: the package's own).
    """
    check_name(name, "model name")
    if card.name != name:
        raise ConfigError(f"the card is for {card.name!r} but the model is published as {name!r}; make them agree")
    if dtype not in PUBLISHABLE_DTYPES:
        raise ConfigError(f"dtype {dtype} cannot be published; choose one of {list(PUBLISHABLE_DTYPES)}")
    root = zoo_root(weights_root)
    tokenizer_text = _tokenizer_text(model, card, tokenizer_dir, root)
    series = _checked_series(model, checkpoints or {})

    root.mkdir(parents=True, exist_ok=True)
    entry_staging = _staging_folder(root / name)
    moves = []
    try:
        files = _write_entry(entry_staging, name, model, series, dtype)
        if card.tokenizer is not None:
            tokenizer_files, tokenizer_staging = _stage_tokenizer(root, name, card.tokenizer, tokenizer_text)
            files.update(tokenizer_files)
            if tokenizer_staging is not None:
                moves.append((tokenizer_staging, tokenizer_folder(root, card.tokenizer)))
        completed = dataclasses.replace(
            card,
            files=dict(sorted(files.items())),
            dtype=str(dtype).removeprefix("torch."),
            n_parameters=sum(parameter.numel() for parameter in model.parameters()),
            checkpoint_steps=sorted(series),
            created=card.created or datetime.date.today().isoformat(),
            card_version=CARD_VERSION,
        )
        (entry_staging / CARD_FILE).write_text(completed.to_json(), encoding="utf-8")
        moves.append((entry_staging, root / name))
        move_folders_into_place(moves)
    except BaseException:
        for staging, _ in [(entry_staging, None), *moves]:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return completed


def _write_entry(
    folder: Path, name: str, model: HookedTransformer, series: dict[int, StateDict], dtype: torch.dtype
) -> dict[str, str]:
    """Write config, weights and checkpoints into ``folder``; returns their sha256 by card path."""
    config = {
        **model.cfg.to_dict(),
        "model_name": name,
        "format": FORMAT_MARKER,
        "format_version": FORMAT_VERSION,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _save_tensors(model.state_dict(), folder / WEIGHTS_FILE, dtype)
    written = [CONFIG_FILE, WEIGHTS_FILE]
    for step, state in sorted(series.items()):
        relative = checkpoint_file(step)
        (folder / relative).parent.mkdir(exist_ok=True)
        _save_tensors(state, folder / relative, dtype)
        written.append(relative)
    return {entry_path(name, relative): sha256_file(folder / relative) for relative in written}


def _save_tensors(state: StateDict, path: Path, dtype: torch.dtype) -> None:
    tensors = {}
    for key, tensor in state.items():
        # contiguous(): safetensors stores plain tensors; the per-head layout of W_Q/W_K/W_V is rebuilt on load.
        converted = tensor.detach().to(device="cpu", dtype=dtype).contiguous()
        if not bool(torch.isfinite(converted).all()):
            raise ConfigError(
                f"{key} has values that are not finite in {dtype} (largest magnitude {tensor.abs().max().item():.4g}); "
                "publish with dtype=torch.float32, or check the training run for divergence"
            )
        tensors[key] = converted
    save_file(tensors, path, metadata={"format": "pt", "producer": FORMAT_MARKER})
    os.chmod(path, 0o644)  # safetensors writes owner-only files; shipped weights are readable by everyone


def _checked_series(model: HookedTransformer, checkpoints: Mapping[int, StateDict]) -> dict[int, StateDict]:
    """The checkpoint series, each state dict checked against the model before anything is written."""
    for step, state in checkpoints.items():
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ConfigError(f"checkpoint steps must be non-negative integers, got {step!r}")
        problems = CheckpointProblems(f"for step {step}")
        compare_with_model(state, model, problems)
        problems.raise_if_any()
    return dict(checkpoints)


def _tokenizer_text(
    model: HookedTransformer, card: ModelCard, tokenizer_dir: str | os.PathLike[str] | None, root: Path
) -> str | None:
    """The ``tokenizer.json`` to publish, or None when the card names none or the zoo's copy is to be used.

    Without ``tokenizer_dir``, a tokenizer the zoo already holds is kept (the model's own tokenizer must
    have the same vocabulary): a tokenizer wrapped by ``transformers`` serialises slightly differently from
    the file it was read from, and must not count as a different tokenizer.
    """
    if card.tokenizer is None:
        if tokenizer_dir is not None or model.tokenizer is not None:
            raise ConfigError(
                f"the card for {card.name!r} names no tokenizer, but a tokenizer was given; set card.tokenizer to "
                "the name to store it under (e.g. 'stdlib-4096'), or publish a model whose tokens are not text "
                "without one"
            )
        return None
    check_name(card.tokenizer, "tokenizer name")
    own = getattr(model.tokenizer, "backend_tokenizer", None)
    in_zoo = tokenizer_folder(root, card.tokenizer) / TOKENIZER_FILES[0]
    if tokenizer_dir is not None:
        path = Path(tokenizer_dir).expanduser() / TOKENIZER_FILES[0]
        if not path.is_file():
            raise ConfigError(f"tokenizer_dir has no {TOKENIZER_FILES[0]} (looked for {path})")
        text = path.read_text(encoding="utf-8")
    elif in_zoo.is_file():
        if own is not None and Tokenizer.from_file(str(in_zoo)).get_vocab() != own.get_vocab():
            raise ConfigError(
                f"the model's tokenizer differs from the zoo's tokenizer {card.tokenizer!r}; pass tokenizer_dir to "
                "replace it, or name the model's tokenizer differently (card.tokenizer)"
            )
        return None
    elif own is not None:
        text = own.to_str()
    else:
        raise ConfigError(
            f"the card names the tokenizer {card.tokenizer!r}, which the zoo does not hold yet; pass tokenizer_dir "
            "(a folder with tokenizer.json) or publish a model that carries the tokenizer"
        )
    _check_tokenizer(text, model.cfg)
    return text


def _check_tokenizer(text: str, cfg: TransformerConfig) -> None:
    """The zoo loads tokenizers with ``<|endoftext|>`` (id 0) as BOS, EOS and padding; the ids must fit the model."""
    tokenizer = Tokenizer.from_str(text)
    if tokenizer.token_to_id(END_OF_TEXT) != END_OF_TEXT_ID:
        raise ConfigError(
            f"the tokenizer must have {END_OF_TEXT} as id {END_OF_TEXT_ID} (the zoo uses it as BOS, EOS and padding); "
            "train it with circuitlab.data.train_tokenizer"
        )
    if tokenizer.get_vocab_size() > cfg.d_vocab:
        raise ConfigError(
            f"the tokenizer has {tokenizer.get_vocab_size()} tokens but the model's d_vocab is {cfg.d_vocab}"
        )


def _stage_tokenizer(root: Path, name: str, tokenizer: str, text: str | None) -> tuple[dict[str, str], Path | None]:
    """The tokenizer's sha256 by card path, and a staging folder to move into place (None to keep the zoo's copy)."""
    target = tokenizer_folder(root, tokenizer)
    if text is None:
        present = [file for file in TOKENIZER_FILES if (target / file).is_file()]
        return {tokenizer_path(tokenizer, file): sha256_file(target / file) for file in present}, None

    staging = _staging_folder(target)
    (staging / TOKENIZER_FILES[0]).write_text(text, encoding="utf-8")
    # The zoo loads every tokenizer with this configuration, so that is the one shipped with it.
    config_text = json.dumps(hugging_face_config(), indent=2, sort_keys=True) + "\n"
    (staging / TOKENIZER_FILES[1]).write_text(config_text, encoding="utf-8")
    hashes = {tokenizer_path(tokenizer, file): sha256_file(staging / file) for file in TOKENIZER_FILES}
    existing = {
        tokenizer_path(tokenizer, file): sha256_file(target / file)
        for file in TOKENIZER_FILES
        if (target / file).is_file()
    }
    if existing == hashes:
        shutil.rmtree(staging)
        return hashes, None
    users = [
        other for other in model_names(root) if other != name and catalogue.card(other, root).tokenizer == tokenizer
    ]
    if existing and users:
        shutil.rmtree(staging)
        raise ConfigError(
            f"the zoo already holds a different tokenizer named {tokenizer!r}, used by {users}; "
            "publish this one under another name (card.tokenizer)"
        )
    return hashes, staging


def _staging_folder(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.publishing-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    return staging
