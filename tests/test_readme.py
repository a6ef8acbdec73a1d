"""Every Python example in the README and docs/ runs (a tiny local GPT-2 checkpoint stands in for "path/to/gpt2")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    (document.relative_to(ROOT).as_posix(), index, code)
    for document in DOCUMENTS
    for index, code in enumerate(re.findall(r"```python\n(.*?)```", document.read_text(), flags=re.DOTALL))
]


def test_the_readme_has_python_examples() -> None:
    assert sum(name == "README.md" for name, _, _ in BLOCKS) >= 2


@pytest.mark.parametrize(("document", "index", "code"), BLOCKS, ids=[f"{d}-{i}" for d, i, _ in BLOCKS])
def test_python_example_runs(document: str, index: int, code: str, hf_checkpoint) -> None:
    code = code.replace("path/to/gpt2", str(hf_checkpoint.folder))
    exec(compile(code, f"{document} python block {index}", "exec"), {})
