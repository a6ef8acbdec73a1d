"""The pretrained models circuitlab knows by name, with their sizes and the names people use for them.

Any Hugging Face repository or local folder holding a supported architecture loads too; this table
only adds short names (``"gpt2-small"``), the Hub repositories to look for, and sizes to list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KnownModel:
    """A pretrained checkpoint: where it lives on the Hub and how big it is."""

    name: str
    repo_ids: tuple[str, ...]
    """Hub repositories holding it, the one to download from first. Older names redirect to newer
    ones on the Hub, but the local cache keeps whichever name was used to download."""
    aliases: tuple[str, ...]
    architecture: str
    n_layers: int
    d_model: int
    n_heads: int
    d_vocab: int
    n_ctx: int

    @property
    def n_params(self) -> int:
        """Parameters in the GPT-2 checkpoint, the tied embedding and unembedding counted once."""
        d = self.d_model
        embeddings = (self.d_vocab + self.n_ctx) * d
        # Per block: Q, K, V and O (4 d^2) and the MLP (8 d^2), their biases (9 d), two LayerNorms (4 d).
        per_block = 12 * d * d + 13 * d
        return embeddings + self.n_layers * per_block + 2 * d


def _gpt2_sizes(n_layers: int, d_model: int, n_heads: int) -> dict[str, Any]:
    # Every GPT-2 size shares the vocabulary and the context window.
    return dict(
        architecture="GPT2LMHeadModel", n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_vocab=50257, n_ctx=1024
    )


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel(
        name="gpt2",
        repo_ids=("gpt2", "openai-community/gpt2"),
        aliases=("gpt2-small",),
        **_gpt2_sizes(n_layers=12, d_model=768, n_heads=12),
    ),
    KnownModel(
        name="gpt2-medium",
        repo_ids=("gpt2-medium", "openai-community/gpt2-medium"),
        aliases=(),
        **_gpt2_sizes(n_layers=24, d_model=1024, n_heads=16),
    ),
    KnownModel(
        name="gpt2-large",
        repo_ids=("gpt2-large", "openai-community/gpt2-large"),
        aliases=(),
        **_gpt2_sizes(n_layers=36, d_model=1280, n_heads=20),
    ),
    KnownModel(
        name="gpt2-xl",
        repo_ids=("gpt2-xl", "openai-community/gpt2-xl"),
        aliases=(),
        **_gpt2_sizes(n_layers=48, d_model=1600, n_heads=25),
    ),
    KnownModel(
        name="distilgpt2",
        repo_ids=("distilgpt2", "distilbert/distilgpt2"),
        aliases=("distil-gpt2", "distillgpt2", "distill-gpt2"),
        **_gpt2_sizes(n_layers=6, d_model=768, n_heads=12),
    ),
)


def known_models() -> list[KnownModel]:
    """Every model circuitlab knows by name, smallest first."""
    return sorted(KNOWN_MODELS, key=lambda model: model.n_params)


def find_known_model(name: str) -> KnownModel | None:
    """The known model that ``name`` (its name, an alias or a Hub repository, any case) refers to."""
    wanted = name.strip().lower()
    for model in KNOWN_MODELS:
        if wanted in {model.name, *model.aliases, *(repo_id.lower() for repo_id in model.repo_ids)}:
            return model
    return None
