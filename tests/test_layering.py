"""Lower layers never import higher ones: the package's architecture, checked on every import statement."""

from __future__ import annotations

import ast
from pathlib import Path

import circuitlab

LAYERS = ["hooks", "model", "loading", "data", "analysis", "zoo", "train", "viz", "experiments", "learn", "cli"]
# HookedTransformer.from_pretrained / save_pretrained are TransformerLens-style façades that import
# the loading layer inside the method body; nothing at module level depends upward.
ALLOWED = {("model", "loading")}
PACKAGE_ROOT = Path(circuitlab.__file__).parent


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "circuitlab" and len(parts) > 1 and parts[1] in LAYERS:
                layers.add(parts[1])
    return layers


def test_no_layer_imports_a_higher_layer() -> None:
    violations = []
    for layer in LAYERS:
        for path in sorted((PACKAGE_ROOT / layer).rglob("*.py")):
            for imported in imported_layers(path):
                if LAYERS.index(imported) > LAYERS.index(layer) and (layer, imported) not in ALLOWED:
                    violations.append(f"{path.relative_to(PACKAGE_ROOT)} imports circuitlab.{imported}")
    assert not violations, "\n".join(violations)


def test_every_package_folder_is_a_known_layer() -> None:
    folders = {p.name for p in PACKAGE_ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders <= set(LAYERS), folders - set(LAYERS)
