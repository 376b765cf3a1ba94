"""The package layering: `detectors` (pure ML) and `ingest` (audio, features, sensor
clients, bulk writes) never import `service`, and `detectors` imports neither `service`
nor `ingest`, so each lower package stays usable (and testable) without the ones above."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"ingest": {"service"}, "detectors": {"service", "ingest"}}


def _imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, at any depth of its code (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_packages_never_import_the_layers_above(package: str) -> None:
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules
    offending = {str(m.relative_to(ROOT)): sorted(_imported_packages(m) & FORBIDDEN[package])
                 for m in modules}
    assert {m: found for m, found in offending.items() if found} == {}
