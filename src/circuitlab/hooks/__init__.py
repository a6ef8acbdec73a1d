"""Named hook points and the API to read and change activations through them."""

from circuitlab.hooks.batch_axis import without_batch_axis
from circuitlab.hooks.hook_point import HookFunction, HookPoint, RegisteredHook
from circuitlab.hooks.hooked_module import HookedRootModule, HookSpec, NameFilter
from circuitlab.hooks.names import get_act_name, nearest_names

__all__ = [
    "HookFunction",
    "HookPoint",
    "HookSpec",
    "HookedRootModule",
    "NameFilter",
    "RegisteredHook",
    "get_act_name",
    "nearest_names",
    "without_batch_axis",
]
