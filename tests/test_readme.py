"""Every Python example in the README runs (a tiny local GPT-2 checkpoint stands in for "path/to/gpt2")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index: int, hf_checkpoint) -> None:
    code = BLOCKS[index].replace("path/to/gpt2", str(hf_checkpoint.folder))
    exec(compile(code, f"README.md python block {index}", "exec"), {})
