"""HookedRootModule: the hook-management API shared by every hooked model.

A model derives from it, builds its modules, and calls ``setup_hooks()`` once; every
``HookPoint`` inside is then reachable by its dotted module name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from circuitlab.errors import HookNameError, HookNotFiredError, InputError
from circuitlab.hooks.batch_axis import without_batch_axis
from circuitlab.hooks.hook_point import Direction, HookFunction, HookPoint, RegisteredHook
from circuitlab.hooks.names import nearest_names

NameFilter = str | Sequence[str] | Callable[[str], bool] | None
HookSpec = tuple[str | Callable[[str], bool], HookFunction]
"""``(name or name predicate, hook function)`` as TransformerLens takes them."""


class HookedRootModule(nn.Module):
    """Owns the hook points below it: find them by name, attach hooks, run with hooks or a cache."""

    hook_dict: dict[str, HookPoint]

    def setup_hooks(self) -> None:
        """Name every ``HookPoint`` after its module path; call once at the end of ``__init__``."""
        self.hook_dict = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self.hook_dict[name] = module

    @property
    def hook_names(self) -> list[str]:
        return list(self.hook_dict)

    # -- finding hook points ------------------------------------------------------------------

    def hook_point(self, name: str) -> HookPoint:
        """The hook point called ``name``; an unknown name raises ``HookNameError`` with suggestions."""
        try:
            return self.hook_dict[name]
        except KeyError:
            suggestions = ", ".join(f"'{s}'" for s in nearest_names(name, self.hook_dict))
            raise HookNameError(
                f"no hook point named '{name}' in {type(self).__name__}; nearest valid names: {suggestions} "
                "(see `model.hook_names` for all)"
            ) from None

    def _names_matching(self, predicate: Callable[[str], bool]) -> list[str]:
        """The hook names that pass ``predicate``; matching none is a ``HookNameError`` (likely a typo)."""
        names = [name for name in self.hook_dict if predicate(name)]
        if not names:
            raise HookNameError(
                f"the name predicate matched none of the {len(self.hook_dict)} hook points of "
                f"{type(self).__name__} (see `model.hook_names` for them)"
            )
        return names

    def _points_for(self, name_or_filter: str | Callable[[str], bool]) -> list[HookPoint]:
        if isinstance(name_or_filter, str):
            return [self.hook_point(name_or_filter)]
        if callable(name_or_filter):
            return [self.hook_dict[name] for name in self._names_matching(name_or_filter)]
        raise TypeError(f"a hook is addressed by a name or a predicate on names, got {type(name_or_filter)}")

    # -- attaching and removing hooks ---------------------------------------------------------

    def add_hook(
        self,
        name: str | Callable[[str], bool],
        hook: HookFunction,
        dir: Direction = "fwd",
        is_permanent: bool = False,
    ) -> list[RegisteredHook]:
        """Attach ``hook`` to the named hook point (or to every point whose name passes the predicate).

        The hook stays until ``reset_hooks()`` (or, when ``is_permanent``, ``reset_hooks(including_permanent=True)``).
        """
        return [point.add_hook(hook, dir, permanent=is_permanent) for point in self._points_for(name)]

    def reset_hooks(self, including_permanent: bool = False) -> None:
        """Remove every hook (keeping permanent ones unless ``including_permanent``)."""
        for point in self.hook_dict.values():
            point.remove_hooks("both", including_permanent=including_permanent)

    @contextlib.contextmanager
    def hooks(
        self,
        fwd_hooks: Sequence[HookSpec] = (),
        bwd_hooks: Sequence[HookSpec] = (),
        reset_hooks_end: bool = True,
    ) -> Iterator[HookedRootModule]:
        """Attach hooks for the duration of a ``with`` block; they are removed on exit, even after an error.

        When the block ends normally, a hook that never ran raises ``HookNotFiredError`` (for a
        predicate: none of the points it matched ran): a silent no-op would make an intervention look
        like it had no effect. Backward hooks run when ``.backward()`` is called inside the block.
        """
        with self._attached(fwd_hooks, bwd_hooks, reset_hooks_end, require_fired=True):
            yield self

    @contextlib.contextmanager
    def _attached(
        self,
        fwd_hooks: Sequence[HookSpec],
        bwd_hooks: Sequence[HookSpec],
        reset_hooks_end: bool,
        require_fired: bool,
    ) -> Iterator[None]:
        requests: list[_HookRequest] = []
        try:
            for direction, specs in (("fwd", fwd_hooks), ("bwd", bwd_hooks)):
                for target, fn in specs:
                    attached = self.add_hook(target, fn, dir=direction)  # type: ignore[arg-type]
                    requests.append(_HookRequest(target, direction, attached))  # type: ignore[arg-type]
            yield
        finally:
            if reset_hooks_end:
                for request in requests:
                    for hook in request.hooks:
                        hook.remove()
        if require_fired:
            # Hooks left attached on purpose (reset_hooks_end=False) may still see their backward pass.
            _raise_if_not_fired([r for r in requests if reset_hooks_end or r.direction == "fwd"])

    def run_with_hooks(
        self,
        *model_args: Any,
        fwd_hooks: Sequence[HookSpec] = (),
        bwd_hooks: Sequence[HookSpec] = (),
        reset_hooks_end: bool = True,
        **model_kwargs: Any,
    ) -> Any:
        """Run the model once with temporary hooks (``[(name, fn), ...]``) and return its output."""
        if bwd_hooks and reset_hooks_end:
            raise InputError(
                "backward hooks only run when you call .backward(), after run_with_hooks has returned and "
                "removed them; use `with model.hooks(bwd_hooks=...): model(...).backward()` instead"
            )
        with self.hooks(fwd_hooks, bwd_hooks, reset_hooks_end=reset_hooks_end):
            return self(*model_args, **model_kwargs)

    # -- caching ------------------------------------------------------------------------------

    def run_with_cache(
        self,
        *model_args: Any,
        names_filter: NameFilter = None,
        incl_bwd: bool = False,
        device: torch.device | str | None = None,
        remove_batch_dim: bool = False,
        **model_kwargs: Any,
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """Run the model and return ``(output, {hook name: activation})``.

        ``names_filter``: None for every hook point, a name, a list of names, or a predicate (one
        that matches no hook point is a ``HookNameError``).
        ``incl_bwd``: also run ``output.backward()`` (the output must be a scalar, e.g. a loss) and
        store gradients under ``name + "_grad"``. Activations are detached (gradients do not flow
        into the cache); ``remove_batch_dim`` drops a batch axis of size 1.
        """
        cache: dict[str, torch.Tensor] = {}
        fwd_hooks, bwd_hooks = self.get_caching_hooks(cache, names_filter, incl_bwd, device, remove_batch_dim)
        # Names asked for one by one must be reached; a predicate (or "everything") selects what
        # exists, and points a run does not reach (e.g. beyond stop_at_layer) are simply absent.
        explicit = isinstance(names_filter, str | Sequence)
        with self._attached(fwd_hooks, bwd_hooks, reset_hooks_end=True, require_fired=explicit):
            output = self(*model_args, **model_kwargs)
            if incl_bwd:
                if not isinstance(output, torch.Tensor) or output.numel() != 1:
                    shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                    raise InputError(
                        f"incl_bwd=True back-propagates from the model's output, which must be a scalar "
                        f"(e.g. return_type='loss'); got {shape}"
                    )
                output.backward()
        return output, cache

    def get_caching_hooks(
        self,
        cache: dict[str, torch.Tensor],
        names_filter: NameFilter = None,
        incl_bwd: bool = False,
        device: torch.device | str | None = None,
        remove_batch_dim: bool = False,
    ) -> tuple[list[HookSpec], list[HookSpec]]:
        """Hooks that write activations (and, with ``incl_bwd``, gradients) into ``cache``."""
        names = self._select_names(names_filter)

        def store(key: str, tensor: torch.Tensor) -> None:
            tensor = tensor.detach()
            if remove_batch_dim:
                tensor = without_batch_axis(key, tensor)
            cache[key] = tensor.to(device) if device is not None else tensor

        def save_activation(activation: torch.Tensor, hook: HookPoint) -> None:
            store(hook.name, activation)

        def save_gradient(grad: torch.Tensor, hook: HookPoint) -> None:
            store(hook.name + "_grad", grad)

        fwd: list[HookSpec] = [(name, save_activation) for name in names]
        bwd: list[HookSpec] = [(name, save_gradient) for name in names] if incl_bwd else []
        return fwd, bwd

    def _select_names(self, names_filter: NameFilter) -> list[str]:
        if names_filter is None:
            return list(self.hook_dict)
        if isinstance(names_filter, str):
            names_filter = [names_filter]
        if isinstance(names_filter, Sequence):
            for name in names_filter:
                self.hook_point(name)  # raises HookNameError with suggestions
            return list(names_filter)
        if callable(names_filter):
            return self._names_matching(names_filter)
        raise TypeError(f"names_filter must be None, a name, a list of names or a predicate; got {type(names_filter)}")


@dataclass
class _HookRequest:
    """One ``(name or predicate, fn)`` that a caller asked for, and the hooks it attached."""

    target: str | Callable[[str], bool]
    direction: Direction
    hooks: list[RegisteredHook]

    @property
    def fired(self) -> bool:
        return any(hook.calls for hook in self.hooks)


MAX_NAMES_IN_MESSAGE = 8


def _raise_if_not_fired(requests: list[_HookRequest]) -> None:
    silent = [_why_not_fired(request) for request in requests if not request.fired]
    if silent:
        raise HookNotFiredError("; ".join(silent))


def _why_not_fired(request: _HookRequest) -> str:
    kind = "forward" if request.direction == "fwd" else "backward"
    if isinstance(request.target, str):
        subject = f"{kind} hook on '{request.target}' never ran"
        one = True
    else:
        names = [f"'{hook.point.name}'" for hook in request.hooks]
        more = len(names) - MAX_NAMES_IN_MESSAGE
        listed = ", ".join(names[:MAX_NAMES_IN_MESSAGE]) + (f" and {more} more" if more > 0 else "")
        subject = f"{kind} hook given by a name predicate never ran on any point it matched ({listed})"
        one = len(names) == 1
    if request.direction == "bwd":
        no_grad = sorted({hook.no_grad_reason for hook in request.hooks if hook.no_grad_reason})
        if no_grad:
            return (
                f"{subject}: the forward pass reached it but {'; '.join(no_grad)}, so there was no gradient "
                "to hook; run the forward with gradients enabled and call .backward() inside the `hooks` block"
            )
        return f"{subject}: call .backward() inside the `hooks` block"
    conditions = [hook.point.enabled_by for hook in request.hooks]
    if all(conditions):
        points = "this hook point only runs" if one else "these hook points only run"
        return f"{subject}: {points} with {' / '.join(sorted({c for c in conditions if c}))}"
    return (
        f"{subject}: the forward pass did not reach it "
        "(is the hook point disabled in the config, or did the run stop early?)"
    )
