"""The rules of docs/architecture.md that code can check."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    """Modules `path` imports, as dotted names (relative imports made absolute in mnist_core)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add(f"mnist_core.{node.module}" if node.level == 1 else node.module or "")
    return found


def test_mnist_core_never_imports_streamlit_and_has_no_import_cycle():
    graph = {}
    for path in (ROOT / "mnist_core").glob("*.py"):
        imported = imports_of(path)
        assert not any(name.split(".")[0] == "streamlit" for name in imported), path.name
        graph[f"mnist_core.{path.stem}"] = {name for name in imported if name.startswith("mnist_core.")}

    def cycle_from(module, trail):
        for child in graph.get(module, ()):
            if child in trail:
                return [*trail[trail.index(child):], child]
            found = cycle_from(child, [*trail, child])
            if found:
                return found
        return None

    for module in graph:
        assert cycle_from(module, [module]) is None, " -> ".join(cycle_from(module, [module]))
