"""The allocator setting that keeps freed memory for reuse is applied once, and can be switched off."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = "import circuitlab; from circuitlab.model.memory import retain_freed_memory; print(retain_freed_memory())"


def run_python(code: str, **env: str) -> str:
    import os

    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_freed_memory_is_retained_by_default_on_linux() -> None:
    assert run_python(CHECK) == "True"


def test_the_setting_can_be_switched_off() -> None:
    assert run_python(CHECK, CIRCUITLAB_RETAIN_FREED_MEMORY="0") == "False"
