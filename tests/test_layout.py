"""The package's layout contracts: no import cycles, no imports hidden inside functions (except of
optional heavy dependencies), a core that imports nothing else of colorbook, every command listed."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "colorbook"
# imported where they are used because they are heavy (seconds) or needed by one feature only
HEAVY_OPTIONAL = {"pytorch_fid", "cv2", "mlxtend", "skimage", "sklearn", "matplotlib", "pandas"}
COMMANDS = ("recipes", "train", "colorize", "frames", "evaluate", "probe-critic", "reproduce", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p)) for p in PACKAGE.rglob("*.py")}


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module:
        names = [node.module]
        # `from colorbook import color` imports the module colorbook.color
        names += [f"{node.module}.{alias.name}" for alias in node.names]
        return names
    return []


def test_no_import_inside_a_function_except_heavy_optional_dependencies():
    offenders = []
    for name, tree in _modules().items():
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                for imported in _imported(node):
                    if isinstance(node, ast.ImportFrom) and imported != node.module:
                        continue
                    if imported.split(".")[0] not in HEAVY_OPTIONAL:
                        offenders.append(f"{name}.{function.name}: import {imported}")
    assert not offenders, "imports inside functions:\n" + "\n".join(offenders)


def test_no_import_cycle_between_colorbook_modules():
    modules = _modules()
    graph = {name: set() for name in modules}
    for name, tree in modules.items():
        for node in tree.body:  # module level only: the imports that run at import time
            for imported in _imported(node):
                if imported in modules and imported != name:
                    graph[name].add(imported)
    seen, stack, cycles = set(), [], []

    def visit(node: str) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for successor in sorted(graph[node]):
            visit(successor)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_core_imports_nothing_else_of_colorbook():
    tree = _modules()["colorbook.core"]
    imported = [name for node in ast.walk(tree) for name in _imported(node)]
    assert not [name for name in imported if name.startswith("colorbook")]


def test_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "colorbook", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    missing = [command for command in COMMANDS if command not in result.stdout]
    assert not missing, f"commands missing from --help: {missing}"


def test_no_guarded_imports():
    """Registries are filled by their owners; no module swallows a failed import of a colorbook module."""
    offenders = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(_imported(n) and any(i.startswith("colorbook") for i in _imported(n))
                                                 for n in node.body):
                offenders.append(name)
    assert not offenders, f"guarded colorbook imports in {offenders}"
