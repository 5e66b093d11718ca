"""The shape of the code, checked: no import cycles, no private name used across modules, and the
core never importing a builtin plugin (DESIGN.md, docs/architecture.md).

Every import counts, also those inside functions (a lazy import is still a dependency), and
`importlib.import_module("lora_doctor.…")` with a literal (or an f-string's literal prefix);
only imports under `if TYPE_CHECKING:` (annotations, never run) do not.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from support import ROOT

# the installed package maps lora_doctor.plugins to plugins/ (pyproject's package-dir)
PACKAGE_DIRS = ((ROOT / "lora_doctor", "lora_doctor"), (ROOT / "plugins", "lora_doctor.plugins"))
PLUGINS = "lora_doctor.plugins"
FACADE = "lora_doctor"  # the public surface for plugin authors: lazy re-exports, never used inside


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    names: tuple[str, ...] = ()


def modules() -> dict[str, Path]:
    found = {}
    for base, package in PACKAGE_DIRS:
        for path in sorted(base.rglob("*.py")):
            parts = [package, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(source: str, module: str | None, level: int) -> str:
    if not level:
        return module or ""
    package = source if _is_package(source) else source.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{module}" if module else package


def _dynamic_targets(call: ast.Call) -> list[str]:
    """importlib.import_module("lora_doctor.x") / (f"lora_doctor.commands.{name}") -> module names."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name != "import_module" or not call.args:
        return []
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value] if arg.value in MODULES else []
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = arg.values[0].value
        return [m for m in MODULES if m.startswith(prefix) and m != prefix.rstrip(".")]
    return []


def edges_of(source: str, path: Path) -> tuple[list[Edge], list[tuple[str, int, str]]]:
    """(import edges to lora_doctor modules, private names touched through an imported module)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for stmt in node.body for n in ast.walk(stmt)}
    edges: list[Edge] = []
    module_aliases: dict[str, str] = {}  # local name -> lora_doctor module it is bound to
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # `if TYPE_CHECKING:` imports are for annotations: never run
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lora_doctor"):
                    edges.append(Edge(source, alias.name, node.lineno))
                    if alias.asname:
                        module_aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(source, node.module, node.level)
            if not base.startswith("lora_doctor"):
                continue
            plain = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    edges.append(Edge(source, sub, node.lineno))
                    module_aliases[alias.asname or alias.name] = sub
                else:
                    plain.append(alias.name)
            if plain:
                edges.append(Edge(source, base, node.lineno, tuple(plain)))
        elif isinstance(node, ast.Call):
            edges += [Edge(source, t, node.lineno) for t in _dynamic_targets(node)]
    private = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases and _private(node.attr)
                and module_aliases[node.value.id] != source):
            private.append((source, node.lineno, f"{module_aliases[node.value.id]}.{node.attr}"))
    return edges, private


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def all_edges() -> tuple[list[Edge], list[tuple[str, int, str]]]:
    edges, private = [], []
    for name, path in MODULES.items():
        e, p = edges_of(name, path)
        edges += e
        private += p
    return edges, private


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for e in edges:
        if e.target in graph and e.target != e.source:
            graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


EDGES, PRIVATE = all_edges()


def test_the_walk_sees_function_level_and_dynamic_imports():
    targets = {(e.source, e.target) for e in EDGES}
    # a function-level import (commands import their helpers lazily) and the cli's importlib dispatch
    assert ("lora_doctor.commands.plugins", "lora_doctor.host.pluginmanager") in targets
    assert ("lora_doctor.cli", "lora_doctor.commands.env") in targets
    assert len(MODULES) > 50


def test_no_import_cycles():
    internal = [e for e in EDGES if e.source != FACADE]  # the facade re-exports lazily, for plugins only
    found = cycles(internal)
    detail = []
    for component in found:
        members = set(component)
        detail.append(" <-> ".join(component) + ": " + "; ".join(
            f"{e.source}:{e.line} imports {e.target}" for e in internal
            if e.source in members and e.target in members and e.source != e.target))
    assert not found, "import cycles:\n" + "\n".join(detail)


def test_no_private_name_imported_across_modules():
    bad = [f"{e.source}:{e.line} imports {n} from {e.target}" for e in EDGES for n in e.names
           if _private(n) and e.target != e.source]
    bad += [f"{src}:{line} uses {name}" for src, line, name in PRIVATE]
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_the_core_never_imports_a_builtin_plugin():
    bad = [f"{e.source}:{e.line} imports {e.target}" for e in EDGES
           if (e.target == PLUGINS or e.target.startswith(PLUGINS + "."))
           and not e.source.startswith(PLUGINS + ".") and e.source != PLUGINS]
    assert not bad, "the core must reach builtin plugins only through the plugin host:\n" + "\n".join(bad)


def test_the_core_does_not_use_the_plugin_facade():
    """`from lora_doctor import Check` is for plugin authors; inside, import from the defining module
    (the facade's lazy re-exports would otherwise hide cycles)."""
    bad = [f"{e.source}:{e.line} imports {', '.join(n for n in e.names if n != '__version__')} from lora_doctor"
           for e in EDGES if e.target == FACADE and e.source.startswith("lora_doctor.")
           and not e.source.startswith(PLUGINS) and any(n != "__version__" for n in e.names)]
    assert not bad, "\n".join(bad)
