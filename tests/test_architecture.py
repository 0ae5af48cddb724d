"""Guards that keep the package's layout as docs/ARCHITECTURE.md describes it: subpackages in one downward
order that talk through their faces, no Streamlit in the package, no torch on the dashboard's import path,
modules of one concern (at most 500 lines, data tables excepted)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "deconfound"
BASE = {"errors", "paths", "jsonio", "text_measures", "presets"}  # modules every layer may import
# What each subpackage may import (besides the base modules): the flow's downward order.
ALLOWED = {
    "data": set(),
    "sim": {"data"},
    "causal": {"data"},
    "models": set(),
    "rewards": {"data", "causal", "models"},
    "train": {"models"},
    "runs": {"data", "causal", "models", "rewards", "train"},
    "evaluate": {"data", "causal", "models", "rewards", "train", "runs", "sim"},
    "audits": {"data", "causal", "models", "rewards", "train", "runs", "evaluate"},
    "cli": {"data", "causal", "models", "rewards", "train", "runs", "evaluate", "sim", "audits"},
}
DATA_TABLES = {PACKAGE / "sim" / "corpus.py"}  # the simulation's word lists: long by nature
MAX_LINES = 500


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def owner(path: Path) -> str:
    """The subpackage (or base module) a file belongs to."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def imported(path: Path) -> list[tuple[list[str], int]]:
    """Every `deconfound` module a file imports, as its dotted parts below `deconfound` (with the line)."""
    package = list(path.relative_to(PACKAGE).parts[:-1])  # the package the file is in
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                names = [a.name for a in node.names]
                out.append((target, node.lineno, names))
            elif node.module and node.module.split(".")[0] == "deconfound":
                out.append((node.module.split(".")[1:], node.lineno, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "deconfound":
                    out.append((alias.name.split(".")[1:], node.lineno, []))
    return out


def test_the_package_never_imports_streamlit():
    offenders = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "streamlit" for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"the package imports streamlit (keep it in pages/ and ui/): {offenders}"


def test_subpackages_import_only_downward_and_through_faces():
    problems = []
    for path in modules():
        mine = owner(path)
        if mine not in ALLOWED:
            continue  # base modules and the worker entry point
        for target, line, names in imported(path):
            if not target:  # `from .. import paths` style: the names are modules of the top package
                target_owners = set(names)
            else:
                target_owners = {target[0]}
            for other in target_owners:
                if other == mine or other in BASE:
                    continue
                where = f"{path.relative_to(ROOT)}:{line}"
                if other not in ALLOWED[mine]:
                    problems.append(f"{where}: {mine} may not import {other}")
                elif len(target) > 1 and target[0] == other:
                    problems.append(f"{where}: import {'.'.join(target)} through the face of {other}")
    assert not problems, "\n".join(problems)


def test_no_import_cycles_between_subpackages():
    graph = {name: set() for name in ALLOWED}
    for path in modules():
        mine = owner(path)
        if mine not in graph:
            continue
        for target, _, names in imported(path):
            for other in (set(names) if not target else {target[0]}):
                if other in graph and other != mine:
                    graph[mine].add(other)
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError(f"import cycle: {' → '.join(stack[stack.index(node):] + [node])}")
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in graph:
        visit(node)


def test_modules_have_one_concern_and_stay_short():
    long = {str(p.relative_to(ROOT)): n for p in modules() if p not in DATA_TABLES
            and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("module", ["deconfound.cli", "deconfound.data", "deconfound.causal", "deconfound.evaluate",
                                    "deconfound.runs", "deconfound.rewards", "deconfound.sim", "ui.common"])
def test_the_dashboard_path_loads_no_torch(module):
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {module}; "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"importing {module} loads {out.stdout.strip()}"
