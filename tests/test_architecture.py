"""The rules of docs/architecture.md that code can check."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mnist_core"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Modules `path` imports, as dotted names (relative imports made absolute)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(filter(None, (base, node.module)))
            found.add(module)
            # `from . import x` and `from .pkg import x` may name modules: count them as imported
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def all_imports() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Which of the package's modules each of its modules imports."""
    found = all_imports()
    return {module: imported & set(found) for module, imported in found.items()}


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        for child in graph.get(module, ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_mnist_core_never_imports_streamlit_and_has_no_import_cycle():
    for module, imported in all_imports().items():
        assert not any(name.split(".")[0] == "streamlit" for name in imported), module
    internal = import_graph()

    def cycle_from(module, trail):
        for child in internal.get(module, ()):
            if child in trail:
                return [*trail[trail.index(child):], child]
            found = cycle_from(child, [*trail, child])
            if found:
                return found
        return None

    for module in internal:
        assert cycle_from(module, [module]) is None, " -> ".join(cycle_from(module, [module]))


def test_the_read_path_never_reaches_training_jobs_or_the_command_line():
    internal = import_graph()
    reading = [m for m in internal if m.startswith("mnist_core.reading")]
    assert "mnist_core.reading.reading" in reading and len(reading) >= 9
    forbidden = {"mnist_core.training", "mnist_core.fused", "mnist_core.jobs", "mnist_core.__main__",
                 "mnist_core.sweeps", "mnist_core.executors", "mnist_core.backends", "mnist_core.ray_backend"}
    for module in reading:
        assert not reachable(internal, module) & forbidden, module
