"""The layout docs/architecture.md draws, kept true: segzoo's import graph (files as nodes, every import an edge,
function-level and TYPE_CHECKING imports included) has no circle and never imports up a floor; plugins import only
the plugin API; importing the JSON façade changes nothing in the process."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Floors, lowest first (docs/architecture.md, "Layers"): a module may import its own floor and those below it.
LAYERS: list[tuple[str, ...]] = [
    ("segzoo.errors", "segzoo.files", "segzoo.overrides", "segzoo.version", "segzoo.hookspecs", "segzoo.flags"),
    ("segzoo.registry", "segzoo.plugins"),
    ("segzoo",),  # the package: the registry API plugins and configs call
    ("segzoo.nn", "segzoo.data", "segzoo.builtin", "segzoo.complexity", "segzoo.paired"),
    ("segzoo.runfiles",),
    ("segzoo.bundle",),
    ("segzoo.tracking",),
    ("segzoo.figures",),
    ("segzoo.export",),
    ("segzoo.engine",),
    ("segzoo.study", "segzoo.compare", "segzoo.compare_report", "segzoo.reproduce", "segzoo.reproduce_report", "segzoo.tune",
     "segzoo.tables", "segzoo.scaffold", "segzoo.cli", "segzoo.__main__"),
]
# What a plugin may import from segzoo (docs/writing-a-plugin.md, "The plugin API").
PLUGIN_API = {"segzoo", "segzoo.errors", "segzoo.nn", "segzoo.data", "segzoo.runfiles"}


def module_files(package_dir: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module under ``package_dir`` (a package is named by its folder)."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(path: Path) -> set[str]:
    """Every dotted name ``path`` imports, at any depth of the file (``from a import b`` gives ``a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ``modules`` that ``name`` lies in (``segzoo.runfiles.store.LAST`` -> ``segzoo.runfiles.store``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = module_files(ROOT / "segzoo")
    graph = {}
    for module, path in modules.items():
        targets = {owner(name, modules) for name in imported_names(path) if name.split(".")[0] == "segzoo"}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def floor(module: str) -> int:
    """The index in :data:`LAYERS` of the longest prefix naming ``module``'s room."""
    best, best_len = None, -1
    for index, rooms in enumerate(LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and len(room) > best_len:
                best, best_len = index, len(room)
    assert best is not None, f"{module} sits on no floor: add its room to LAYERS here and in docs/architecture.md"
    return best


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_import_graph_has_no_circle():
    assert cycles(import_graph()) == []


def test_no_module_imports_up_a_floor():
    upward = [f"{source} (floor {floor(source)}) imports {target} (floor {floor(target)})"
              for source, targets in import_graph().items() for target in sorted(targets)
              if floor(target) > floor(source)]
    assert upward == []


def test_engine_and_export_do_not_import_each_other_both_ways():
    graph = import_graph()
    export_to_engine = [
        (s, t) for s, ts in graph.items() for t in ts if s.startswith("segzoo.export") and t.startswith("segzoo.engine")
    ]
    assert export_to_engine == []


def test_plugins_import_only_the_plugin_api():
    outside = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        if "tests" in path.relative_to(ROOT / "plugins").parts:
            continue  # a plugin's tests may reach into the core, as the core's own tests do
        for name in imported_names(path):
            if name.split(".")[0] == "segzoo" and not any(name == api or name.rpartition(".")[0] == api for api in PLUGIN_API):
                outside.append(f"{path.relative_to(ROOT)}: {name}")
    assert outside == []


def test_plugin_api_names_are_declared_in_all():
    """Each name a plugin imports from the API is in that module's ``__all__``: the API is what ``__all__`` says."""
    import importlib

    undeclared = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in PLUGIN_API and node.module != "segzoo.errors":
                module = importlib.import_module(node.module)
                undeclared += [
                    f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name not in module.__all__
                ]
    assert undeclared == []


def test_segzoo_error_has_one_import_path():
    elsewhere = []
    for path in [*(ROOT / "segzoo").rglob("*.py"), *(ROOT / "plugins").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and any(a.name == "SegzooError" for a in node.names)
                and node.module != "segzoo.errors"
            ):
                elsewhere.append(f"{path.relative_to(ROOT)}: from {node.module} import SegzooError")
    assert elsewhere == []


def test_importing_the_json_facade_changes_nothing_in_the_process():
    """``segzoo list`` imports segzoo.engine through a plugin: that must not install an excepthook or set MLflow's
    environment variables (the entry points that need them do)."""
    probe = ("import os, sys, mlflow, monai, torch; "  # their own import-time settings are theirs, not segzoo's
             "hook = sys.excepthook; before = dict(os.environ); import segzoo.engine; "
             "assert sys.excepthook is hook, 'excepthook installed'; "
             "changed = sorted(set(os.environ.items()) ^ set(before.items())); assert not changed, changed")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
