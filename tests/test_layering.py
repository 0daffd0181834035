"""The house's layering: physics and file formats never import the solver side, and no
module imports itself round a circle (every import, also those inside functions)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"toolkit": "reddiff", "operators": "reddiff.operators", "datasets": "reddiff.datasets"}
#: What operators/ and datasets/ may never import.
SOLVER_SIDE = ("reddiff.solver", "reddiff.pipeline", "reddiff.modalities", "reddiff.cli", "reddiff.demo",
               "reddiff.benchmark", "reddiff.priors")


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str, path: Path) -> set[str]:
    """Modules of reddiff that ``name`` imports anywhere, but under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    package = name if _is_package(name) else name.rpartition(".")[0]
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    targets = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # `from pkg import module` imports the module
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_graph_sees_the_modules():
    assert {"reddiff.solver", "reddiff.operators.ct", "reddiff.datasets.fits", "reddiff.modalities.mri"} <= set(GRAPH)
    assert "reddiff.operators.base" in GRAPH["reddiff.operators.ct"]


@pytest.mark.parametrize("layer", ["reddiff.operators", "reddiff.datasets"])
def test_physics_and_formats_never_import_the_solver_side(layer):
    bad = {(m, t) for m, targets in GRAPH.items() if m.startswith(layer)
           for t in targets if t.startswith(SOLVER_SIDE)}
    assert not bad


def test_operators_never_import_file_formats():
    bad = {(m, t) for m, targets in GRAPH.items() if m.startswith("reddiff.operators")
           for t in targets if t.startswith("reddiff.datasets")}
    assert not bad


def test_no_import_circles():
    """No module reaches itself through imports; the top-level package ``reddiff`` (a façade
    re-exporting the API, imported by nothing inside) is left out."""
    graph = {m: {t for t in targets if t != "reddiff"} for m, targets in GRAPH.items() if m != "reddiff"}
    circles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                circles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles
