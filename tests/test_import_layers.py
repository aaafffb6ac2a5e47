"""The package's import graph, read statically: no circles, and every import points down the layers.

Layers, bottom to top: the shared implementation (`kfp_distill._implementation`, `kfp_distill._version` and the
package's top level, which re-exports public names from them), the components (none imports another), the
pipelines, and the interfaces (`kfp_distill.interfaces`: CLI, serve, submit, publish, compile, demo...); each layer
has its own folder, and a module outside them fails.
Every `import` counts, at module level or inside a function (a lazy import hides a circle, it does not break it),
except those under `if TYPE_CHECKING:`; relative imports are resolved. A package's `__init__` that Python runs
before a submodule is not counted as imported by it. Tests folders are not part of the package and are skipped.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The installed package's folders (pyproject's package-dir).
PACKAGE_DIRS = {
    "kfp_distill": ROOT / "kfp_distill",
    "kfp_distill.components": ROOT / "components",
    "kfp_distill.pipelines": ROOT / "pipelines",
}
IMPLEMENTATION, COMPONENTS, PIPELINES, INTERFACES = 0, 1, 2, 3
LAYER_NAMES = {0: "the shared implementation", 1: "a component", 2: "a pipeline", 3: "an interface"}


@dataclass(frozen=True)
class Import:
    """One import statement's edge: `source` imports `target` at `path:line`."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


def package_modules(package_dirs: dict[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Every module of the package: its dotted name, its file, and whether it is a package's `__init__`."""
    modules = {}
    for package, directory in package_dirs.items():
        for path in sorted(directory.rglob("*.py")):
            parts = path.relative_to(directory).with_suffix("").parts
            if "tests" in parts:
                continue
            is_package = parts[-1] == "__init__"
            name = ".".join((package, *(parts[:-1] if is_package else parts)))
            modules[name] = (path, is_package)
    return modules


def layer(module: str) -> int:
    """The layer a module belongs to (see the module docstring)."""
    if module in ("kfp_distill", "kfp_distill._version") or module.startswith("kfp_distill._implementation"):
        return IMPLEMENTATION
    if module.startswith("kfp_distill.components"):
        return COMPONENTS
    if module.startswith("kfp_distill.pipelines"):
        return PIPELINES
    if module.startswith("kfp_distill.interfaces"):
        return INTERFACES
    raise ValueError(f"{module} is in none of the layers' folders: put it in kfp_distill/_implementation or kfp_distill/interfaces")


def component_of(module: str) -> str | None:
    """The component folder a module belongs to, `kfp_distill.components.<name>`, or None."""
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["kfp_distill", "components"] and len(parts) > 2 else None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except the bodies of `if TYPE_CHECKING:` blocks (their `else` still runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _in_package(name: str, modules: dict) -> str | None:
    """The deepest module of the package that `name` is or lies in (`a.b.c` where only `a.b` is a module: `a.b`)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, modules: dict, root: Path) -> list[Import]:
    """The package modules that `module` imports, one edge per imported module and statement."""
    path, is_package = modules[module]
    shown = str(path.relative_to(root))
    edges = []
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # Relative: from the module's own package, one level up for each dot after the first.
                package = module if is_package else module.rpartition(".")[0]
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            # `from p import m` imports the submodule p.m when there is one, else names from p itself.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        targets = {_in_package(name, modules) for name in names} - {None, module}
        edges.extend(Import(module, target, shown, node.lineno) for target in sorted(targets))
    return sorted(edges, key=lambda edge: edge.line)


def import_graph(
    package_dirs: dict[str, Path] = PACKAGE_DIRS, root: Path = ROOT
) -> tuple[dict[str, list[Import]], dict]:
    """Each module's imports of the package's modules, and the modules (as `package_modules` gives them)."""
    modules = package_modules(package_dirs)
    return {module: imports_of(module, modules, root) for module in modules}, modules


def find_cycles(graph: dict[str, list[Import]]) -> list[list[Import]]:
    """One circle of imports through each strongly connected group of modules (Tarjan's algorithm)."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for edge in graph[module]:
            if edge.target not in index:
                visit(edge.target)
                low[module] = min(low[module], low[edge.target])
            elif edge.target in on_stack:
                low[module] = min(low[module], index[edge.target])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_cycle_through(group, graph) for group in groups]


def _cycle_through(group: set[str], graph: dict[str, list[Import]]) -> list[Import]:
    """A shortest circle of imports from the group's first module back to itself, within the group."""
    start = min(group)
    paths = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for edge in graph[module]:
                if edge.target == start:
                    return paths[module] + [edge]
                if edge.target in group and edge.target not in paths:
                    paths[edge.target] = paths[module] + [edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no circle through {start}")


def layer_violations(graph: dict[str, list[Import]]) -> list[str]:
    """Imports that point up the layers, and components importing other components."""
    problems = []
    for edges in graph.values():
        for edge in edges:
            source_layer, target_layer = layer(edge.source), layer(edge.target)
            if target_layer > source_layer:
                problems.append(f"{edge}: {LAYER_NAMES[source_layer]} imports {LAYER_NAMES[target_layer]}")
            elif source_layer == target_layer == COMPONENTS and component_of(edge.source) != component_of(
                edge.target
            ):
                problems.append(f"{edge}: a component imports another component")
    return problems


def test_the_walk_sees_every_layer_and_lazy_imports():
    graph, modules = import_graph()
    assert {layer(module) for module in modules} == {IMPLEMENTATION, COMPONENTS, PIPELINES, INTERFACES}
    # cli.py imports compiling inside its command handler, and the backends package its backends lazily.
    assert "kfp_distill.interfaces.compiling" in {edge.target for edge in graph["kfp_distill.interfaces.cli"]}
    backends = "kfp_distill.components.generate_rationales.backends"
    assert f"{backends}.openai_compatible" in {edge.target for edge in graph[backends]}


def test_no_import_circles():
    graph, _ = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import circles:\n" + "\n\n".join("\n".join(map(str, cycle)) for cycle in cycles)


def test_imports_point_down_the_layers_and_components_import_no_other_component():
    graph, _ = import_graph()
    problems = layer_violations(graph)
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


def test_pipelines_and_examples_take_public_names_from_the_package_not_from_implementation():
    modules = package_modules(PACKAGE_DIRS)
    examples = {f"examples.{path.stem}": (path, False) for path in sorted((ROOT / "examples").glob("*.py"))}
    modules.update(examples)
    offending = [
        str(edge)
        for module in modules
        if module in examples or layer(module) == PIPELINES
        for edge in imports_of(module, modules, ROOT)
        if edge.target.startswith("kfp_distill._implementation")
    ]
    assert examples and not offending, "import `from kfp_distill import ...` instead:\n" + "\n".join(offending)


def test_the_checks_catch_a_lazy_circle_and_an_upward_import(tmp_path):
    package = tmp_path / "kfp_distill"
    (package / "_implementation").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_implementation" / "__init__.py").write_text("")
    (package / "_implementation" / "a.py").write_text("from . import b\n")
    (package / "_implementation" / "b.py").write_text(
        "def f():\n    from kfp_distill._implementation.a import x\n    import kfp_distill.interfaces.cli\n"
    )
    (package / "interfaces").mkdir()
    (package / "interfaces" / "__init__.py").write_text("")
    (package / "interfaces" / "cli.py").write_text("")
    graph, _ = import_graph({"kfp_distill": package}, tmp_path)
    [cycle] = find_cycles(graph)
    assert [(edge.source, edge.target, edge.line) for edge in cycle] == [
        ("kfp_distill._implementation.a", "kfp_distill._implementation.b", 1),
        ("kfp_distill._implementation.b", "kfp_distill._implementation.a", 2),
    ]
    [problem] = layer_violations(graph)
    assert problem == (
        "kfp_distill/_implementation/b.py:3: kfp_distill._implementation.b imports kfp_distill.interfaces.cli: "
        "the shared implementation imports an interface"
    )


def test_every_module_sits_in_its_layer_s_folder():
    top_level = {"kfp_distill", "kfp_distill._version"}
    folders = ("kfp_distill._implementation", "kfp_distill.components", "kfp_distill.pipelines", "kfp_distill.interfaces")
    outside = [name for name in package_modules(PACKAGE_DIRS) if name not in top_level and not name.startswith(folders)]
    assert not outside, f"modules outside the layers' folders (kfp_distill/_implementation or kfp_distill/interfaces): {outside}"
