"""The import rules of docs/ARCHITECTURE.md: a part of the library imports only the parts below
it in LAYERS, so there are no cycles and each stage can be read, tested and replaced on its own.
Imports inside functions count too: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "newsanchor"

# lowest first; a module may import its own unit and any unit listed before it
LAYERS = [
    "__init__", "errors", "timing", "progress", "files", "threads",  # foundations
    "media", "speech", "features", "facemap", "config", "weights", "dataset",
    "prepare",                                               # recordings → dataset
    "audio2mouth", "template", "composite", "render",        # the models and the picture
    "train",                                                 # dataset → models
    "bundle", "pipeline", "synthesis",                       # models → anchor → video
    "evaluate", "recording_check",                           # measuring models and recordings
    "create",                                                # recordings → checked, trained, reported anchor
    "serve", "demo",                                         # applications of the library
    "cli", "__main__",                                       # the command line: parses, calls the library
]
# modules that belong to another unit
UNIT_OF = {"prepare_rerun": "prepare"}


def _unit(path: Path) -> str:
    first = path.relative_to(PACKAGE).parts[0]
    first = first[:-3] if first.endswith(".py") else first
    return UNIT_OF.get(first, first)


def _imported_units(path: Path, package: Path = PACKAGE) -> set[tuple[str, int]]:
    """(unit, line) of every import of a newsanchor module in ``path``, a module of ``package``."""
    package_parts = path.relative_to(package).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package_parts[: len(package_parts) - node.level + 1])
            parts = base + (node.module.split(".") if node.module else [])
            names = [parts[0]] if parts else [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("newsanchor."):
            names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("newsanchor.")]
        else:
            continue
        found |= {(UNIT_OF.get(name, name), node.lineno) for name in names}
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer():
    units = {_unit(path) for path in _modules()}
    assert units - set(LAYERS) == set(), "a new part of the library: give it a place in LAYERS and docs/ARCHITECTURE.md"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_lower_layers(path: Path):
    unit = _unit(path)
    wrong = [f"line {line}: {unit} imports {target}" for target, line in sorted(_imported_units(path))
             if target != unit and target in LAYERS and LAYERS.index(target) > LAYERS.index(unit)]
    assert wrong == []


def test_the_rules_catch_upward_imports(tmp_path):
    probe = tmp_path / "train" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("import numpy\nfrom . import state\n\n\ndef f():\n    from ..evaluate.renderer import evaluate_renderers\n"
                     "    import newsanchor.serve.app\n    from newsanchor.cli import app\n")
    assert _imported_units(probe, tmp_path) == {("train", 2), ("evaluate", 6), ("serve", 7), ("cli", 8)}
