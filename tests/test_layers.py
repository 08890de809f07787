"""The layers hold: arrows point down only, and no two modules import each other, at module level or
through imports inside functions (an allow-list of at most 3 edges, each with its reason).

    pipeline            the top: CLI, session, executors, every stage's shell
    train               may use synth, extractors, manifests
    synth               may use extractors, manifests
    crawlers, extractors  may use manifests
    manifests           the dataset contract: imports no other package of the project

Imports are read from the source with `ast` (nothing is imported), so the test also sees imports
inside functions, which the first rule counts too: a library must not reach up even lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "train", "synth", "crawlers", "extractors", "manifests")
# What each package may import besides itself.
ALLOWED = {
    "pipeline": {"train", "synth", "crawlers", "extractors", "manifests"},
    "train": {"synth", "extractors", "manifests"},
    "synth": {"extractors", "manifests"},
    "crawlers": {"manifests"},
    "extractors": {"manifests"},
    "manifests": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against this module's package
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        # `from a.b import c` may import the module a.b.c or the name c of a.b: both are resolved below.
        return [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
    return []


def imports_of(path: Path, module: str, module_level_only: bool) -> set[str]:
    """Project modules imported by `path` (anywhere, or only by statements run at import time)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    names: list[str] = []

    def visit(node: ast.AST, top: bool) -> None:
        names.extend(_imported_names(node, module, is_package))
        for child in ast.iter_child_nodes(node):
            # Function bodies run later, not at import time; class bodies, if/try blocks do run.
            inside_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if module_level_only and inside_function:
                continue
            visit(child, top and not inside_function)

    visit(tree, True)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name refers to (a module, or a name inside one)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_libraries_import_only_downwards():
    modules = project_modules()
    violations = []
    for module, path in modules.items():
        package = module.split(".")[0]
        for name in imports_of(path, module, module_level_only=False):
            target = name.split(".")[0]
            if target != package and target not in ALLOWED[package]:
                violations.append(f"{path.relative_to(REPO)} imports {name} ({package} may use {sorted(ALLOWED[package]) or 'nothing else'})")
    assert not violations, "\n".join(violations)


def test_no_import_cycle_at_module_level():
    modules = project_modules()
    graph = {
        module: {target for name in imports_of(path, module, module_level_only=True) if (target := resolve(name, modules)) and target != module}
        for module, path in modules.items()
    }
    # Importing a.b.c also runs a/__init__ and a/b/__init__ (unless they are the importer's own packages,
    # which are already being imported when it runs).
    for module, targets in graph.items():
        own = set(ancestors(module))
        for target in list(targets):
            targets.update(p for p in ancestors(target) if p in modules and p not in own and p != module)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle at module level: " + " -> ".join(cycle)


# Edges of an import cycle that closes only through imports inside functions, each with why it stays.
ALLOWED_LAZY_CYCLE_EDGES = {
    ("pipeline.executors", "pipeline.ray_executor"): "the executor factory builds the Ray executor, which reuses the local one's unit loop",
}


def test_no_import_cycle_counting_imports_inside_functions():
    """Imports inside functions run too, later: a cycle through them is a design knot even when import
    order happens to work. Only the allow-listed edges may close one."""
    assert len(ALLOWED_LAZY_CYCLE_EDGES) <= 3
    modules = project_modules()
    graph = {
        module: {target for name in imports_of(path, module, module_level_only=False) if (target := resolve(name, modules)) and target != module}
        for module, path in modules.items()
    }
    for (importer, imported), _reason in ALLOWED_LAZY_CYCLE_EDGES.items():
        assert imported in graph[importer], f"allow-listed edge {importer} -> {imported} is gone: drop it from the list"
        graph[importer].discard(imported)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle (imports inside functions counted): " + " -> ".join(cycle)


def ancestors(module: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`]."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as a closed path, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            if not children:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            child = children.pop()
            if state.get(child) == 1:
                return path[path.index(child) :] + [child]
            if not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, sorted(graph.get(child, ()))))
    return None


@pytest.mark.parametrize(
    ("graph", "has_cycle"),
    [({"a": {"b"}, "b": {"c"}, "c": set()}, False), ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True), ({"a": {"a2"}, "a2": {"a"}}, True)],
)
def test_the_cycle_finder_finds_cycles(graph, has_cycle):
    assert (find_cycle(graph) is not None) == has_cycle


def test_the_scan_sees_a_lazy_upward_import(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from pipeline.console import console\n")
    assert imports_of(source, "train.mod", module_level_only=False) == {"pipeline.console", "pipeline.console.console"}
    assert imports_of(source, "train.mod", module_level_only=True) == set()


def test_the_job_runner_does_not_import_the_cli_entry_point():
    """`pipe run` is one command of pipeline.cli: the job modules must not import the entry point back."""
    modules = project_modules()
    offenders = [
        f"{module} imports {name}"
        for module, path in modules.items()
        if module.startswith("pipeline.job")
        for name in imports_of(path, module, module_level_only=False)
        if resolve(name, modules) in ("pipeline.cli", "pipeline.commands.run", "pipeline.commands.demo")
    ]
    assert not offenders, offenders
