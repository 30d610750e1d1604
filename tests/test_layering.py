"""The layering of DESIGN.md, checked on the source: no import runs from ``agent/`` up to ``flows/`` or the CLI.

The CLI starts flows, so it sits above ``flows/``; ``flows/`` sits above ``agent/``. An upward import would make
the controller core depend on Prefect's shell around it (and once did: the CLI lived in ``agent/cli``).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: package -> the packages of ours it must not import
FORBIDDEN = {"agent": {"flows", "cli"}, "flows": {"cli"}, "matloop": {"agent", "flows", "cli"},
             "surrogates": {"agent", "flows", "cli"}, "lab_adapters": {"agent", "flows", "cli"},
             "generators": {"agent", "flows", "cli"}}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_package_imports_a_layer_above_it() -> None:
    upward = [
        f"{path.relative_to(REPO)} imports {sorted(_imported_roots(path) & banned)}"
        for package, banned in FORBIDDEN.items()
        for path in sorted((REPO / package).rglob("*.py"))
        if _imported_roots(path) & banned
    ]
    assert not upward, "\n".join(upward)
