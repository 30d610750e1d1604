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


def _own_private_names(paths: list[Path]) -> set[str]:
    """Private names that ``agent/`` itself defines (functions, methods, classes, ``self._x`` attributes)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                names.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr)
                  and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                names.add(node.attr)
    return names


def _private_reaches(path: Path, own: set[str]) -> list[str]:
    """``obj._name`` (not ``self``/``cls``, not a name of ours), and ``getattr(obj, "_name")`` and kin."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in GPYTORCH_INTERNALS:
            found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and _private(node.args[1].value)):
            found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.func.id}(..., {node.args[1].value!r})")
    return found


#: gpytorch state that is public by name but internal to an exact GP's prediction (caches, kernel, training data).
GPYTORCH_INTERNALS = {"prediction_strategy", "mean_cache", "lik_train_train_covar", "covar_module", "mean_module",
                      "train_inputs", "train_targets"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_agent_reaches_into_no_private_attribute():
    """The controller core uses models through their public API (``posterior``, ``marginal_moments``): shortcuts
    through gpytorch's or BoTorch's private state belong to ``surrogates/``, next to the models they depend on."""
    paths = sorted((REPO / "agent").rglob("*.py"))
    own = _own_private_names(paths)
    reaches = [hit for path in paths for hit in _private_reaches(path, own)]
    assert not reaches, "\n".join(reaches)
