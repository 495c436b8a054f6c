"""The layers of the code import one way, down, with no cycles (docs/architecture.md draws them).

Every import counts, also one inside a function: a lazy import that goes up is still an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

from fleet.paths import PROJECT_ROOT

LAYERS: tuple[tuple[str, ...], ...] = (
    ("policies",),  # the CrossGuard pack: only pulumi_policy
    ("fleet.errors", "fleet.paths"),
    ("fleet.sdk_internals",),
    ("fleet.model",),
    ("fleet.postgres", "fleet.redis_users"),  # server tooling the providers and operations share
    ("components.providers",),
    ("components",),
    ("fleet.program",),
    ("fleet.offline",),
    ("fleet.preview", "fleet.engine"),
    ("fleet.ops",),
    ("fleet.bench",),
    ("fleet.cli",),
    ("fleet.__main__", "__main__"),
)
"""Lowest first. A module may import its own layer and those below it."""
PACKAGES = ("fleet", "components", "policies")


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix that matches."""
    best, length = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def project_modules() -> dict[str, Path]:
    modules = {"__main__": PROJECT_ROOT / "__main__.py"}
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports (the module itself for `from package import module`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    if path.parent.name == "policies" and "fleet_policies" in path.read_text(encoding="utf-8"):
        found.add("policies.fleet_policies")  # policies/__main__.py imports it by its bare name
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        # a package's __init__ is imported by each of its modules; that is no dependency of the module
        graph[name] = {target for target in imports_of(path, modules) if target != name and not name.startswith(target + ".")}
    return graph


def test_every_import_goes_down_the_layers():
    upward = []
    for module, targets in import_graph().items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} imports {target}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    graph = import_graph()
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_production_module_imports_the_tests():
    offenders = [name for name, path in project_modules().items() if "tests" in {n.split(".")[0] for n in _all_imports(path)}]
    assert not offenders


def _all_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_layer_check_sees_an_upward_import_and_a_cycle():
    assert layer_of("fleet.cli.plan") > layer_of("fleet.offline.plan") > layer_of("fleet.model.spec")
    assert layer_of("components.providers.caddy") < layer_of("components.tenant")
    graph = import_graph()
    assert "fleet.model.spec" in graph["fleet.model.load"]  # the walk finds real imports
