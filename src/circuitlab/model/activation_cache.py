"""ActivationCache: the activations of one run, with residual-stream decompositions.

The residual stream is a sum: embeddings, then every attention and MLP output. The methods here
split it into those terms (or finer ones: heads, neurons) as a stack ``[component, batch, pos,
d_model]`` whose sum over components is the cached residual stream at a chosen point.

Points in the residual stream are named by ``layer`` (``None`` or ``-1`` mean ``n_layers``):
the input to block ``layer`` (``resid_pre``), or with ``mlp_input=True`` the input to its MLP
(``resid_mid``); ``layer = n_layers`` is the final stream that ``ln_final`` reads. A stack for a
point holds what was written before it.

``apply_ln=True`` passes each component through the norm that reads that point, treated as the
fixed linear map it is on this input (see ``apply_ln_to_stack``): the components then sum to the
norm's output minus its bias ``b``, a constant that no component owns.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Sequence, ValuesView
from typing import TYPE_CHECKING

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from circuitlab.errors import CacheKeyError, ConfigError, InputError
from circuitlab.hooks import get_act_name, nearest_names
from circuitlab.model.components import LayerNorm

if TYPE_CHECKING:
    from circuitlab.model.hooked_transformer import HookedTransformer

PosSlice = int | slice | Sequence[int] | Int[Tensor, "..."] | None
"""Positions to keep: None (all), an int (drops the axis), a slice, or a list / tensor of indices."""
Stack = Float[Tensor, "component ... d_model"]
TokenSpec = int | str | Sequence[int] | Sequence[str] | Int[Tensor, "..."]


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


class ActivationCache:
    """A read-only mapping from hook name to activation, plus the model it came from.

    ``cache["blocks.0.attn.hook_pattern"]``, or in shorthand ``cache["pattern", 0]``,
    ``cache["scale", 1, "ln1"]``, ``cache["embed"]`` (see ``circuitlab.hooks.get_act_name``;
    negative layers count from the end). Activations are ``[batch, pos, ...]``, or ``[pos, ...]``
    when ``has_batch_dim`` is False.
    """

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
        hint = (
            "it is a hook point of the model but was not cached (check names_filter, or stop_at_layer)"
            if name in self.model.hook_dict
            else "the model has no hook point of that name"
        )
        raise CacheKeyError(f"'{name}' is not in the cache: {hint}; nearest cached names: {nearest or 'none'}")

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
        return f"ActivationCache({', '.join(names[:4])}{more})"

    # -- whole-cache changes ------------------------------------------------------------------

    def remove_batch_dim(self) -> ActivationCache:
        """Drop the batch axis of every activation, in place (the batch must be of size 1). Returns self."""
        if not self.has_batch_dim:
            return self
        for name, activation in self.cache_dict.items():
            if activation.shape[0] != 1:
                raise InputError(
                    f"remove_batch_dim needs a batch of one, but '{name}' has batch size {activation.shape[0]}; "
                    "index the activations you need instead"
                )
        self.cache_dict = {name: activation[0] for name, activation in self.cache_dict.items()}
        self.has_batch_dim = False
        return self

    def to(self, device: torch.device | str, move_model: bool = False) -> ActivationCache:
        """Move every activation (and, with ``move_model``, the model) to ``device``, in place. Returns self."""
        self.cache_dict = {name: activation.to(device) for name, activation in self.cache_dict.items()}
        if move_model:
            self.model.to(device)
        return self

    # -- points in the residual stream --------------------------------------------------------

    def _resolve_layer(self, layer: int | None, mlp_input: bool = False) -> int:
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

    def _finish(
        self,
        parts: list[Tensor],
        labels: list[str],
        layer: int,
        mlp_input: bool,
        apply_ln: bool,
        pos_slice: PosSlice,
        return_labels: bool,
    ) -> Stack | tuple[Stack, list[str]]:
        """Stack the parts and apply the norm at ``layer`` if asked."""
        stack = torch.stack(parts) if parts else self._empty_stack(pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input=mlp_input, pos_slice=pos_slice)
        return (stack, labels) if return_labels else stack

    def _empty_stack(self, pos_slice: PosSlice) -> Tensor:
        template = slice_along(self["hook_embed"], pos_slice, dim=-2)
        return template.new_zeros((0, *template.shape))

    def accumulated_resid(
        self,
        layer: int | None = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        mlp_input: bool = False,
        return_labels: bool = False,
    ) -> Stack | tuple[Stack, list[str]]:
        """The residual stream at each point up to ``layer``: ``[point, batch, pos, d_model]`` (the logit lens).

        ``resid_pre`` of blocks ``0..layer`` (labels ``"0_pre"``, ...), with ``incl_mid`` also each
        ``resid_mid`` before ``layer`` (``"0_mid"``), with ``mlp_input`` also ``layer``'s
        ``resid_mid``; ``layer = n_layers`` ends with the final stream (``"final_post"``).
        """
        layer = self._resolve_layer(layer, mlp_input)
        n_layers = self.model.cfg.n_layers
        parts: list[Tensor] = []
        labels: list[str] = []
        for index in range(layer + 1):
            if index == n_layers:
                parts.append(self[f"blocks.{n_layers - 1}.hook_resid_post"])
                labels.append("final_post")
                break
            parts.append(self[f"blocks.{index}.hook_resid_pre"])
            labels.append(f"{index}_pre")
            if not self.model.cfg.attn_only and ((incl_mid and index < layer) or (mlp_input and index == layer)):
                parts.append(self[f"blocks.{index}.hook_resid_mid"])
                labels.append(f"{index}_mid")
        parts = [slice_along(part, pos_slice, dim=-2) for part in parts]
        return self._finish(parts, labels, layer, mlp_input, apply_ln, pos_slice, return_labels)

    def decompose_resid(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        mode: str = "all",
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        incl_embeds: bool = True,
        return_labels: bool = False,
    ) -> Stack | tuple[Stack, list[str]]:
        """The residual stream at ``layer`` split by the sublayer that wrote each part.

        Components: ``"embed"``, ``"pos_embed"`` (when the model has learned positions), then
        ``"{l}_attn_out"`` and ``"{l}_mlp_out"`` per block (``mode`` ``"attn"`` or ``"mlp"`` keeps one
        kind). With every component included they sum to the residual stream exactly.
        """
        if mode not in ("all", "attn", "mlp"):
            raise InputError(f"mode must be 'all', 'attn' or 'mlp', got {mode!r}")
        layer = self._resolve_layer(layer, mlp_input)
        with_attn, with_mlp = mode != "mlp", mode != "attn" and not self.model.cfg.attn_only
        parts: list[Tensor] = []
        labels: list[str] = []
        if incl_embeds:
            parts.append(self["hook_embed"])
            labels.append("embed")
            if self.model.cfg.positional_embedding_type == "standard":
                parts.append(self["hook_pos_embed"])
                labels.append("pos_embed")
        for index in range(layer + 1 if mlp_input else layer):
            if with_attn:
                parts.append(self[f"blocks.{index}.hook_attn_out"])
                labels.append(f"{index}_attn_out")
            if with_mlp and index < layer:
                parts.append(self[f"blocks.{index}.hook_mlp_out"])
                labels.append(f"{index}_mlp_out")
        parts = [slice_along(part, pos_slice, dim=-2) for part in parts]
        return self._finish(parts, labels, layer, mlp_input, apply_ln, pos_slice, return_labels)

    # -- heads and neurons --------------------------------------------------------------------

    def _head_results(self, n_blocks: int, pos_slice: PosSlice) -> tuple[list[Tensor], list[str]]:
        """Each head's write into the residual stream (without ``b_O``) in blocks ``0..n_blocks - 1``."""
        parts: list[Tensor] = []
        labels: list[str] = []
        for index in range(n_blocks):
            result_name = f"blocks.{index}.attn.hook_result"
            if result_name in self.cache_dict:
                result = slice_along(self[result_name], pos_slice, dim=-3)  # (B, P, H, D)
            else:
                z = slice_along(
                    self._require(f"blocks.{index}.attn.hook_z", "per-head results (or cache hook_result)"),
                    pos_slice,
                    dim=-3,
                )
                W_O = self._weight(self.model.blocks[index].attn.W_O, z)
                result = einops.einsum(z, W_O, "... head d_head, head d_head d_model -> ... head d_model")
            parts.extend(torch.movedim(result, -2, 0))
            labels.extend(f"L{index}H{head}" for head in range(result.shape[-2]))
        return parts, labels

    @staticmethod
    def _weight(param: Tensor, like: Tensor) -> Tensor:
        """A weight as a constant next to cached activations (no autograd graph back into the model)."""
        return param.detach().to(like.device, like.dtype)

    def _require(self, name: str, purpose: str) -> Tensor:
        if name not in self.cache_dict:
            raise CacheKeyError(f"{purpose} needs '{name}', which is not in the cache; run run_with_cache with it")
        return self.cache_dict[name]

    def stack_head_results(
        self,
        layer: int = -1,
        return_labels: bool = False,
        incl_remainder: bool = False,
        pos_slice: PosSlice = None,
        apply_ln: bool = False,
    ) -> Stack | tuple[Stack, list[str]]:
        """Each head's output ``z[h] @ W_O[h]`` for the blocks before ``layer``: ``[head, batch, pos, d_model]``.

        Labels ``"L{l}H{h}"``. Uses ``hook_result`` when cached, else ``hook_z`` and ``W_O``. The
        attention biases ``b_O`` are not in any head; ``incl_remainder`` adds a ``"remainder"``
        component (the residual stream minus all heads) so the stack sums to the stream.
        """
        layer = self._resolve_layer(layer)
        parts, labels = self._head_results(layer, pos_slice)
        if incl_remainder:
            resid = slice_along(self._resid_at(layer, mlp_input=False), pos_slice, dim=-2)
            parts.append(resid - sum(parts, torch.zeros_like(resid)))
            labels.append("remainder")
        return self._finish(parts, labels, layer, False, apply_ln, pos_slice, return_labels)

    def _neuron_results(
        self, n_blocks: int, neuron_slice: PosSlice, pos_slice: PosSlice
    ) -> tuple[list[Tensor], list[str]]:
        parts: list[Tensor] = []
        labels: list[str] = []
        for index in range(n_blocks):
            post = slice_along(self._require(f"blocks.{index}.mlp.hook_post", "neuron results"), pos_slice, dim=-2)
            neurons = torch.arange(post.shape[-1])
            if neuron_slice is not None:
                neurons = slice_along(neurons, neuron_slice, dim=0).reshape(-1)
            W_out = self._weight(self.model.blocks[index].mlp.W_out, post)[neurons.to(post.device)]  # (N, D)
            post = post[..., neurons.to(post.device)]  # (B, P, N)
            result = einops.einsum(post, W_out, "... neuron, neuron d_model -> neuron ... d_model")
            parts.extend(result)
            labels.extend(f"L{index}N{neuron}" for neuron in neurons.tolist())
        return parts, labels

    def stack_neuron_results(
        self,
        layer: int | None = None,
        neuron_slice: PosSlice = None,
        pos_slice: PosSlice = None,
        return_labels: bool = False,
        apply_ln: bool = False,
    ) -> Stack | tuple[Stack, list[str]]:
        """Each neuron's write ``post[n] * W_out[n]`` in the blocks before ``layer``: ``[neuron, batch, pos, d_model]``.

        Labels ``"L{l}N{n}"``; ``neuron_slice`` picks neurons within every block. ``b_out`` is not in
        any neuron.
        """
        if self.model.cfg.attn_only:
            raise ConfigError("stack_neuron_results needs MLPs, but this model is attention-only")
        layer = self._resolve_layer(layer)
        parts, labels = self._neuron_results(layer, neuron_slice, pos_slice)
        return self._finish(parts, labels, layer, False, apply_ln, pos_slice, return_labels)

    def stack_activation(
        self, activation_name: str, layer: int = -1, sublayer_type: str | None = None
    ) -> Float[Tensor, "layer ..."]:
        """``activation_name`` (shorthand, e.g. ``"pattern"``) of blocks ``0..layer - 1`` stacked: ``[layer, ...]``."""
        layer = self._resolve_layer(layer)
        if layer == 0:
            raise InputError("stack_activation needs at least one block: pass layer >= 1 (or -1 for all)")
        return torch.stack([self[(activation_name, index, sublayer_type)] for index in range(layer)])

    def get_full_resid_decomposition(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        expand_neurons: bool = True,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        return_labels: bool = False,
    ) -> Stack | tuple[Stack, list[str]]:
        """The residual stream at ``layer`` split as finely as the model allows; the parts sum to it.

        Every head (``"L{l}H{h}"``), every neuron (``"L{l}N{n}"``; with ``expand_neurons=False``
        each MLP's output ``"{l}_mlp_out"`` instead), ``"embed"``, ``"pos_embed"``, and ``"bias"``: the
        sum of ``b_O`` (and, when neurons are expanded, ``b_out``) of the blocks included.
        """
        layer = self._resolve_layer(layer, mlp_input)
        head_blocks = layer + 1 if mlp_input else layer
        parts, labels = self._head_results(head_blocks, pos_slice)
        if not self.model.cfg.attn_only:
            if expand_neurons:
                neuron_parts, neuron_labels = self._neuron_results(layer, None, pos_slice)
            else:
                mlp_stack, neuron_labels = self.decompose_resid(
                    layer, mode="mlp", pos_slice=pos_slice, incl_embeds=False, return_labels=True
                )
                neuron_parts = list(mlp_stack)
            parts += neuron_parts
            labels += neuron_labels
        embeds, embed_labels = self.decompose_resid(0, pos_slice=pos_slice, return_labels=True)
        parts += list(embeds)
        labels += embed_labels
        biases = [block.attn.b_O for block in self.model.blocks[:head_blocks]]
        if expand_neurons and not self.model.cfg.attn_only:
            biases += [block.mlp.b_out for block in self.model.blocks[:layer]]
        parts.append(sum((self._weight(b, embeds) for b in biases), torch.zeros_like(embeds[0])))
        labels.append("bias")
        return self._finish(parts, labels, layer, mlp_input, apply_ln, pos_slice, return_labels)

    # -- LayerNorm and logits -----------------------------------------------------------------

    def _norm_at(self, layer: int, mlp_input: bool) -> tuple[nn.Module, str]:
        if layer == self.model.cfg.n_layers:
            return self.model.ln_final, "ln_final"
        sublayer = "ln2" if mlp_input else "ln1"
        return getattr(self.model.blocks[layer], sublayer), f"blocks.{layer}.{sublayer}"

    def apply_ln_to_stack(
        self,
        residual_stack: Stack,
        layer: int | None = None,
        mlp_input: bool = False,
        pos_slice: PosSlice = None,
        batch_slice: PosSlice = None,
        has_batch_dim: bool = True,
    ) -> Stack:
        """Apply the norm that reads the stream at ``layer`` to each component, as the linear map it is on this input.

        A LayerNorm computes ``(x - mean(x)) / scale * w + b``; with ``scale`` taken from this run
        (``hook_scale``, which must be cached), that is linear in ``x`` up to ``b``. Each component is
        centred over ``d_model``, divided by the scale and multiplied by ``w`` (when the norm has one).
        The bias ``b`` is a constant that belongs to no component and is not added: add ``b`` once to
        the sum to recover the norm's output. A model without normalisation returns the stack unchanged.

        ``residual_stack``: ``[component, batch, pos, d_model]`` (no batch axis when ``has_batch_dim`` is
        False), already cut to ``pos_slice`` — the slice is applied to the cached scale here.
        ``batch_slice`` is applied to both.
        """
        layer = self._resolve_layer(layer, mlp_input)
        norm, norm_name = self._norm_at(layer, mlp_input)
        if isinstance(norm, nn.Identity):
            return residual_stack
        if not isinstance(norm, LayerNorm):
            raise ConfigError(f"apply_ln_to_stack does not know how to linearise a {type(norm).__name__}")
        if has_batch_dim:
            residual_stack = slice_along(residual_stack, batch_slice, dim=1)
        scale = self._require(f"{norm_name}.hook_scale", f"applying {norm_name} to a residual stack")  # (B, P, 1)
        scale = slice_along(scale, pos_slice, dim=-2)
        if self.has_batch_dim:
            scale = slice_along(scale, batch_slice, dim=0)
        centred = residual_stack - residual_stack.mean(dim=-1, keepdim=True)
        normalised = centred / scale
        if norm.w is not None:
            normalised = normalised * self._weight(norm.w, normalised)
        return normalised

    def _token_directions(self, tokens: TokenSpec, device: torch.device) -> Float[Tensor, "... d_model"]:
        if isinstance(tokens, str):
            tokens = self.model.to_single_token(tokens)
        elif isinstance(tokens, Sequence) and any(isinstance(t, str) for t in tokens):
            tokens = [self.model.to_single_token(t) if isinstance(t, str) else t for t in tokens]
        ids = torch.as_tensor(tokens, device=device)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise InputError(f"tokens must be token ids (ints) or single-token strings, got dtype {ids.dtype}")
        W_U = self.model.unembed.W_U.detach().to(device)
        return W_U.T[ids]  # (*tokens.shape, D)

    def logit_attrs(
        self,
        residual_stack: Stack,
        tokens: TokenSpec,
        incorrect_tokens: TokenSpec | None = None,
        pos_slice: PosSlice = None,
        batch_slice: PosSlice = None,
        has_batch_dim: bool = True,
    ) -> Float[Tensor, "component ..."]:
        """Each component's direct contribution to the logit of ``tokens`` (minus ``incorrect_tokens``).

        ``residual_stack`` holds raw components of the final residual stream (``ln_final`` is applied
        here, see ``apply_ln_to_stack``), each then dotted with ``W_U[:, token]``. Summed over a full
        decomposition, plus the constants ``ln_final.b @ W_U[:, token] + b_U[token]``, that is the logit.
        ``tokens``: an int or a single-token string for every position, or a tensor / list per batch
        element (``[batch]``) or per position (``[batch, pos]``); ``incorrect_tokens`` likewise, either
        the same shape or a single token.
        """
        stack = self.apply_ln_to_stack(
            residual_stack, None, pos_slice=pos_slice, batch_slice=batch_slice, has_batch_dim=has_batch_dim
        )
        directions = self._token_directions(tokens, stack.device)
        if incorrect_tokens is not None:
            incorrect = self._token_directions(incorrect_tokens, stack.device)
            try:
                directions = directions - incorrect
            except RuntimeError:
                raise InputError(
                    f"tokens {tuple(directions.shape[:-1])} and incorrect_tokens {tuple(incorrect.shape[:-1])} "
                    "must have the same shape (or one of them be a single token)"
                ) from None
        per_component = stack.shape[1:-1]  # e.g. (batch, pos), (batch,), (pos,) or ()
        token_shape = directions.shape[:-1]
        if token_shape != per_component[: len(token_shape)]:
            raise InputError(
                f"tokens of shape {tuple(token_shape)} do not line up with the stack's per-component shape "
                f"{tuple(per_component)} (leading axes must match)"
            )
        directions = directions.reshape(*token_shape, *([1] * (len(per_component) - len(token_shape))), -1)
        return (stack * directions.to(stack.dtype)).sum(dim=-1)
