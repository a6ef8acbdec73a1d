"""HookPoint: an identity module that gives an activation a name others can hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from circuitlab.errors import HookShapeError

HookFunction = Callable[..., torch.Tensor | None]
"""``fn(activation, hook=hook_point) -> None | replacement`` (the TransformerLens signature)."""

Direction = Literal["fwd", "bwd"]


@dataclass(eq=False)
class RegisteredHook:
    """One hook function attached to one hook point; ``calls`` counts how often it ran."""

    point: HookPoint
    fn: HookFunction
    direction: Direction
    permanent: bool = False
    calls: int = 0
    active: bool = field(default=True, repr=False)

    def remove(self) -> None:
        """Detach this hook; a backward hook already attached to a live graph becomes inert."""
        self.active = False
        hooks = self.point.fwd_hooks if self.direction == "fwd" else self.point.bwd_hooks
        if self in hooks:
            hooks.remove(self)


class HookPoint(nn.Module):
    """Returns its input unchanged, unless hooks attached to it read or replace the activation.

    The model calls it on every activation worth naming (``blocks.0.attn.hook_pattern``, ...).
    With no hooks attached it costs one Python call and changes nothing.
    """

    def __init__(self, enabled_by: str | None = None) -> None:
        """``enabled_by`` names the setting without which the model never calls this point (for error messages)."""
        super().__init__()
        self.name: str = "<unnamed hook point>"
        self.enabled_by = enabled_by
        self.fwd_hooks: list[RegisteredHook] = []
        self.bwd_hooks: list[RegisteredHook] = []
        # Scratch space that hook functions may use to pass data between calls (as in TransformerLens).
        self.ctx: dict[str, Any] = {}

    def add_hook(self, fn: HookFunction, direction: Direction = "fwd", permanent: bool = False) -> RegisteredHook:
        if direction not in ("fwd", "bwd"):
            raise ValueError(f"hook direction must be 'fwd' or 'bwd', got {direction!r}")
        hook = RegisteredHook(point=self, fn=fn, direction=direction, permanent=permanent)
        (self.fwd_hooks if direction == "fwd" else self.bwd_hooks).append(hook)
        return hook

    def remove_hooks(
        self, direction: Literal["fwd", "bwd", "both"] = "both", including_permanent: bool = False
    ) -> None:
        for hooks, this_direction in ((self.fwd_hooks, "fwd"), (self.bwd_hooks, "bwd")):
            if direction not in (this_direction, "both"):
                continue
            for hook in list(hooks):
                if including_permanent or not hook.permanent:
                    hook.remove()
        if not self.fwd_hooks and not self.bwd_hooks:
            self.ctx.clear()

    def forward(self, activation: torch.Tensor) -> torch.Tensor:
        for hook in list(self.fwd_hooks):
            hook.calls += 1
            replacement = hook.fn(activation, hook=self)
            if replacement is not None:
                self._check_shape(replacement, activation, "forward")
                activation = replacement
        if self.bwd_hooks and activation.requires_grad:
            for hook in list(self.bwd_hooks):
                activation.register_hook(self._make_grad_hook(hook))
        return activation

    def _make_grad_hook(self, hook: RegisteredHook) -> Callable[[torch.Tensor], torch.Tensor | None]:
        def grad_hook(grad: torch.Tensor) -> torch.Tensor | None:
            if not hook.active:  # removed after the forward ran: the graph outlived the hook
                return None
            hook.calls += 1
            replacement = hook.fn(grad, hook=self)
            if replacement is not None:
                self._check_shape(replacement, grad, "backward")
            return replacement

        return grad_hook

    def _check_shape(self, replacement: object, original: torch.Tensor, direction: str) -> None:
        if not isinstance(replacement, torch.Tensor):
            raise HookShapeError(
                f"{direction} hook on '{self.name}' returned {type(replacement).__name__}; "
                "a hook must return None or a tensor of the activation's shape"
            )
        if replacement.shape != original.shape:
            raise HookShapeError(
                f"{direction} hook on '{self.name}' returned a tensor of shape {tuple(replacement.shape)} "
                f"but the activation has shape {tuple(original.shape)}; "
                "a hook must return None or a tensor of the same shape"
            )

    def extra_repr(self) -> str:
        return f"name={self.name!r}, fwd_hooks={len(self.fwd_hooks)}, bwd_hooks={len(self.bwd_hooks)}"
