"""ActivationCache: the activations of one run, with residual-stream decompositions.

The residual stream is a sum: embeddings, then every attention and MLP output. The cache's
methods split it into those terms (or finer ones: heads, neurons) as a stack ``[component, batch,
pos, d_model]`` whose sum over components is the cached residual stream at a chosen point.

Points in the residual stream are named by ``layer`` (``None`` or ``-1`` mean ``n_layers``):
the input to block ``layer`` (``resid_pre``), or with ``mlp_input=True`` the input to its MLP
(``resid_mid``); ``layer = n_layers`` is the final stream that ``ln_final`` reads. A stack for a
point holds what was written before it.

``apply_ln=True`` passes each component through the norm that reads that point, treated as the
fixed linear map it is on this input (see ``apply_ln_to_stack``): the components then sum to the
norm's output minus its bias ``b``, a constant that no component owns.

The class is built in three layers, each in its own file:

- ``cache_mapping.py``: dict-style access by full or shorthand name, ``remove_batch_dim``, ``to``;
- ``logit_attribution.py``: ``apply_ln_to_stack``, ``logit_attrs``;
- ``resid_decomposition.py``: ``accumulated_resid``, ``decompose_resid``, ``stack_head_results``,
  ``stack_neuron_results``, ``stack_activation``, ``get_full_resid_decomposition``.
"""

from __future__ import annotations

from circuitlab.model.cache_mapping import PosSlice, Stack, slice_along
from circuitlab.model.logit_attribution import TokenSpec
from circuitlab.model.resid_decomposition import ResidDecompositionMethods

__all__ = ["ActivationCache", "PosSlice", "Stack", "TokenSpec", "slice_along"]


class ActivationCache(ResidDecompositionMethods):
    """A read-only mapping from hook name to activation, plus the model it came from.

    ``cache["blocks.0.attn.hook_pattern"]``, or in shorthand ``cache["pattern", 0]``,
    ``cache["scale", 1, "ln1"]``, ``cache["embed"]`` (see ``circuitlab.hooks.get_act_name``;
    negative layers count from the end). Activations are ``[batch, pos, ...]``, or ``[pos, ...]``
    when ``has_batch_dim`` is False.
    """
