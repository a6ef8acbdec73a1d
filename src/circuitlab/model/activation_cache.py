"""ActivationCache: the activations of one run, with residual-stream decompositions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitlab.hooks import get_act_name

if TYPE_CHECKING:
    from circuitlab.model.hooked_transformer import HookedTransformer


class ActivationCache:
    """A read-only mapping from hook name to activation, plus the model it came from."""

    def __init__(self, cache_dict: dict[str, Tensor], model: HookedTransformer, has_batch_dim: bool = True) -> None:
        self.cache_dict = cache_dict
        self.model = model
        self.has_batch_dim = has_batch_dim

    def __getitem__(self, key: str | tuple) -> Tensor:
        if isinstance(key, tuple):
            key = get_act_name(*key)
        if key not in self.cache_dict and key in self.model.hook_dict:
            raise KeyError(f"'{key}' is a hook point but was not cached (check names_filter)")
        return self.cache_dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self.cache_dict

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache_dict)

    def __len__(self) -> int:
        return len(self.cache_dict)

    def keys(self):
        return self.cache_dict.keys()

    def values(self):
        return self.cache_dict.values()

    def items(self):
        return self.cache_dict.items()

    def to(self, device: torch.device | str) -> ActivationCache:
        return ActivationCache({k: v.to(device) for k, v in self.cache_dict.items()}, self.model, self.has_batch_dim)

    def __repr__(self) -> str:
        return f"ActivationCache({len(self)} activations: {list(self.cache_dict)[:4]}...)"
