"""CacheMapping: the activations of one run as a read-only mapping from hook name to tensor.

The base of ``ActivationCache`` (see ``activation_cache.py``): dict-style access by full or
shorthand names, whole-cache changes, and the helpers its analysis methods share.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Sequence, ValuesView
from typing import TYPE_CHECKING, TypeVar

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuitlab.errors import CacheKeyError, ConfigError, InputError
from circuitlab.hooks import get_act_name, nearest_names, without_batch_axis

if TYPE_CHECKING:
    from circuitlab.model.hooked_transformer import HookedTransformer

PosSlice = int | slice | Sequence[int] | Int[Tensor, "..."] | None
"""Positions to keep: None (all), an int (drops the axis), a slice, or a list / tensor of indices."""
Stack = Float[Tensor, "component ... d_model"]
SomeCache = TypeVar("SomeCache", bound="CacheMapping")


def slice_along(tensor: Tensor, index: PosSlice, dim: int) -> Tensor:
    """``tensor`` indexed by ``index`` along ``dim`` (an int index drops that axis; None keeps everything)."""
    if index is None:
        return tensor
    if isinstance(index, bool | str) or not isinstance(index, int | slice | Sequence | Tensor):
        raise InputError(
            f"a position or batch slice must be None, an int, a slice, or a list/tensor of ints; got {index!r}"
        )
    if not isinstance(index, int | slice):
        index = torch.as_tensor(index, device=tensor.device)
        if index.dtype.is_floating_point or index.dtype == torch.bool:
            raise InputError(f"a list or tensor of positions must hold integers, got dtype {index.dtype}")
    selection: list[object] = [slice(None)] * tensor.dim()
    selection[dim] = index
    return tensor[tuple(selection)]


class CacheMapping:
    """A read-only mapping from hook name to activation, plus the model it came from."""

    def __init__(self, cache_dict: dict[str, Tensor], model: HookedTransformer, has_batch_dim: bool = True) -> None:
        self.cache_dict = cache_dict
        self.model = model
        self.has_batch_dim = has_batch_dim

    # -- mapping ------------------------------------------------------------------------------

    def _full_name(self, key: str | tuple) -> str:
        if isinstance(key, tuple):
            name, *rest = key
            if rest and isinstance(rest[0], int) and rest[0] < 0:
                rest[0] += self.model.cfg.n_layers
            return get_act_name(name, *rest)
        if key in self.cache_dict:
            return key
        return get_act_name(key)

    def __getitem__(self, key: str | tuple) -> Tensor:
        try:
            name = self._full_name(key)
        except (ValueError, TypeError) as error:
            raise CacheKeyError(f"cannot read {key!r} from the cache: {error}") from None
        if name in self.cache_dict:
            return self.cache_dict[name]
        nearest = ", ".join(f"'{n}'" for n in nearest_names(name, self.cache_dict))
        raise CacheKeyError(
            f"'{name}' is not in the cache: {self._why_missing(name)}; nearest cached names: {nearest or 'none'}"
        )

    def _why_missing(self, name: str) -> str:
        point = self.model.hook_dict.get(name)
        if point is None:
            return "the model has no hook point of that name"
        condition = f"; it only runs with {point.enabled_by}" if point.enabled_by else ""
        return f"it is a hook point of the model but was not cached (check names_filter, or stop_at_layer{condition})"

    def get(self, key: str | tuple, default: Tensor | None = None) -> Tensor | None:
        try:
            return self[key]
        except CacheKeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str | tuple):
            return False
        try:
            return self._full_name(key) in self.cache_dict
        except (ValueError, TypeError):
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache_dict)

    def __len__(self) -> int:
        return len(self.cache_dict)

    def keys(self) -> KeysView[str]:
        return self.cache_dict.keys()

    def values(self) -> ValuesView[Tensor]:
        return self.cache_dict.values()

    def items(self) -> ItemsView[str, Tensor]:
        return self.cache_dict.items()

    def __repr__(self) -> str:
        names = list(self.cache_dict)
        more = f", ... ({len(names) - 4} more)" if len(names) > 4 else ""
        return f"{type(self).__name__}({', '.join(names[:4])}{more})"

    # -- whole-cache changes ------------------------------------------------------------------

    def remove_batch_dim(self: SomeCache) -> SomeCache:
        """Drop the batch axis of every activation, in place (the batch must be of size 1). Returns self."""
        if not self.has_batch_dim:
            return self
        # Build the new dict before replacing the old one, so an error leaves the cache unchanged.
        self.cache_dict = {name: without_batch_axis(name, activation) for name, activation in self.cache_dict.items()}
        self.has_batch_dim = False
        return self

    def to(self: SomeCache, device: torch.device | str, move_model: bool = False) -> SomeCache:
        """Move every activation (and, with ``move_model``, the model) to ``device``, in place. Returns self."""
        self.cache_dict = {name: activation.to(device) for name, activation in self.cache_dict.items()}
        if move_model:
            self.model.to(device)
        return self

    # -- helpers shared by the analysis methods -----------------------------------------------

    def _resolve_layer(self, layer: int | None, mlp_input: bool = False) -> int:
        """A point in the residual stream as a layer in ``0..n_layers`` (see ``activation_cache.py``)."""
        n_layers = self.model.cfg.n_layers
        if layer is None or layer == -1:
            layer = n_layers
        if not 0 <= layer <= n_layers:
            raise InputError(f"layer must be in 0..{n_layers} (or None / -1 for the end of the model), got {layer}")
        if mlp_input:
            if self.model.cfg.attn_only:
                raise ConfigError("mlp_input=True needs MLPs, but this model is attention-only")
            if layer == n_layers:
                raise InputError(
                    f"mlp_input=True names the input to block {layer}'s MLP; the last block is {n_layers - 1}"
                )
        return layer

    def _resid_at(self, layer: int, mlp_input: bool) -> Tensor:
        if layer == self.model.cfg.n_layers:
            return self[f"blocks.{layer - 1}.hook_resid_post"]
        return self[f"blocks.{layer}.hook_{'resid_mid' if mlp_input else 'resid_pre'}"]

    def _require(self, name: str, purpose: str) -> Tensor:
        if name not in self.cache_dict:
            raise CacheKeyError(f"{purpose} needs '{name}', which is not in the cache; run run_with_cache with it")
        return self.cache_dict[name]

    @staticmethod
    def _weight(param: Tensor, like: Tensor) -> Tensor:
        """A weight as a constant next to cached activations (no autograd graph back into the model)."""
        return param.detach().to(like.device, like.dtype)
