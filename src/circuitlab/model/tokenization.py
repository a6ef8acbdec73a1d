"""Text <-> tokens for a model that carries a Hugging Face tokenizer.

BOS is added by circuitlab, not by the tokenizer (``add_special_tokens=False``), so ``prepend_bos``
means the same thing for every tokenizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Int
from torch import Tensor

from circuitlab.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PaddingSide = Literal["left", "right"]


class Tokenization:
    """Mixin for ``HookedTransformer``: needs ``self.tokenizer`` and ``self.cfg.default_prepend_bos``."""

    tokenizer: PreTrainedTokenizerBase | None
    default_padding_side: PaddingSide = "right"

    def _require_tokenizer(self) -> PreTrainedTokenizerBase:
        if self.tokenizer is None:
            raise InputError(
                "this model has no tokenizer, so it cannot take text; pass token ids, or load the model "
                "from a folder that holds a tokenizer (tokenizer.json)"
            )
        return self.tokenizer

    @property
    def bos_token_id(self) -> int:
        tokenizer = self._require_tokenizer()
        for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
            if token_id is not None:
                return int(token_id)
        raise InputError("the tokenizer defines neither a BOS nor an EOS token, so prepend_bos=True cannot work")

    @property
    def pad_token_id(self) -> int:
        tokenizer = self._require_tokenizer()
        for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id):
            if token_id is not None:
                return int(token_id)
        return 0

    def tokenize(
        self,
        text: str | list[str],
        prepend_bos: bool | None = None,
        padding_side: PaddingSide | None = None,
    ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
        """Tokens and attention mask (1 at real tokens, 0 at padding) for a string or a list of them."""
        tokenizer = self._require_tokenizer()
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise InputError("expected a string or a non-empty list of strings")
        prepend_bos = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos  # type: ignore[attr-defined]
        padding_side = padding_side or self.default_padding_side
        if padding_side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        prefix = [self.bos_token_id] if prepend_bos else []
        sequences = [prefix + list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        length = max(len(ids) for ids in sequences)
        if length == 0:
            raise InputError("the text is empty and prepend_bos=False: there is no token to run on")
        tokens = torch.full((len(sequences), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, ids in enumerate(sequences):
            span = slice(length - len(ids), length) if padding_side == "left" else slice(0, len(ids))
            tokens[row, span] = torch.tensor(ids, dtype=torch.long)
            mask[row, span] = 1
        return tokens, mask

    def to_tokens(
        self,
        text: str | list[str],
        prepend_bos: bool | None = None,
        padding_side: PaddingSide | None = None,
    ) -> Int[Tensor, "batch pos"]:
        """Token ids ``[batch, pos]`` for a string or a list of strings (padded to the longest)."""
        return self.tokenize(text, prepend_bos, padding_side)[0]

    def to_string(self, tokens: Int[Tensor, "... pos"] | list[int]) -> str | list[str]:
        """Decode one sequence to a string, or a batch ``[batch, pos]`` to a list of strings."""
        tokenizer = self._require_tokenizer()
        if isinstance(tokens, Tensor) and tokens.dim() == 2:
            return [tokenizer.decode(row.tolist(), clean_up_tokenization_spaces=False) for row in tokens]
        ids = tokens.tolist() if isinstance(tokens, Tensor) else list(tokens)
        return tokenizer.decode(ids, clean_up_tokenization_spaces=False)

    def to_str_tokens(
        self,
        input: str | Int[Tensor, "... pos"] | list[int],
        prepend_bos: bool | None = None,
    ) -> list[str] | list[list[str]]:
        """Each token as its own string (``[" Hello", ","]``); a batch of tokens gives a list per row."""
        tokenizer = self._require_tokenizer()
        if isinstance(input, str):
            tokens = self.to_tokens(input, prepend_bos=prepend_bos)[0]
        else:
            tokens = input if isinstance(input, Tensor) else torch.tensor(input)
        if tokens.dim() == 2:
            return [self.to_str_tokens(row) for row in tokens]  # type: ignore[misc]
        return [tokenizer.decode([t], clean_up_tokenization_spaces=False) for t in tokens.tolist()]

    def to_single_token(self, string: str) -> int:
        """The id of a string that is exactly one token (``" Mary"``); otherwise an ``InputError``."""
        tokens = self.to_tokens(string, prepend_bos=False)[0]
        if tokens.numel() != 1:
            pieces = self.to_str_tokens(tokens)
            raise InputError(f"{string!r} is {tokens.numel()} tokens {pieces}, not one")
        return int(tokens.item())
