"""HookPoint: an identity module that gives an activation a name others can hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from circuitlab.errors import HookShapeError, InputError

HookFunction = Callable[..., torch.Tensor | None]
"""``fn(activation, hook=hook_point) -> None | replacement`` (the TransformerLens signature)."""

Direction = Literal["fwd", "bwd"]


@dataclass(eq=False)
class RegisteredHook:
    """One hook function attached to one hook point; ``calls`` counts how often it ran.

    ``no_grad_reason`` (backward hooks only) says why the point's last forward could not attach the
    hook to the autograd graph (gradients were off), so a hook that never ran can say why.
    """

    point: HookPoint
    fn: HookFunction
    direction: Direction
    permanent: bool = False
    calls: int = 0
    no_grad_reason: str | None = None
    active: bool = field(default=True, repr=False)

    def remove(self) -> None:
        """Detach this hook; a backward hook already attached to a live graph becomes inert.

        The point's ``ctx`` is cleared once no hook is left on it, so scratch data of temporary
        hooks does not leak into later runs.
        """
        self.active = False
        hooks = self.point.fwd_hooks if self.direction == "fwd" else self.point.bwd_hooks
        if self in hooks:
            hooks.remove(self)
            if not self.point.fwd_hooks and not self.point.bwd_hooks:
                self.point.ctx.clear()


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
            raise InputError(f"hook direction must be 'fwd' or 'bwd', got {direction!r}")
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
        if self.bwd_hooks:
            reason = None if activation.requires_grad else _why_no_gradient()
            for hook in list(self.bwd_hooks):
                hook.no_grad_reason = reason
                if reason is None:
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
        what = "activation" if direction == "forward" else "gradient"
        if not isinstance(replacement, torch.Tensor):
            raise HookShapeError(
                f"{direction} hook on '{self.name}' returned {type(replacement).__name__}; "
                f"a hook must return None or a tensor of the {what}'s shape"
            )
        if replacement.shape != original.shape:
            raise HookShapeError(
                f"{direction} hook on '{self.name}' returned a tensor of shape {tuple(replacement.shape)} "
                f"but the {what} has shape {tuple(original.shape)}; "
                "a hook must return None or a tensor of the same shape"
            )

    def extra_repr(self) -> str:
        return f"name={self.name!r}, fwd_hooks={len(self.fwd_hooks)}, bwd_hooks={len(self.bwd_hooks)}"


def _why_no_gradient() -> str:
    """Why an activation that a backward hook wants carries no gradient."""
    if torch.is_inference_mode_enabled():
        return "gradients were disabled (the forward ran under torch.inference_mode)"
    if not torch.is_grad_enabled():
        return "gradients were disabled (the forward ran under torch.no_grad or set_grad_enabled(False))"
    return "the activation did not require grad (no parameter or input before it requires grad)"
