"""The code's layout keeps its promises (README "Code layout"): no import cycles between the
package's modules, no function-level imports outside the CLI, private Optuna API only in the
store, an MLflow client only in tracking/, and modules of a few hundred lines."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hpsearch"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def top_level_imports(path: Path) -> set[str]:
    """The hpsearch modules ``path`` imports when it is imported (not under TYPE_CHECKING)."""
    module, is_package = module_name(path), path.name == "__init__.py"
    names = {module_name(p) for p in MODULES}
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ([node] if not isinstance(node, ast.If) else node.body):
            if isinstance(sub, ast.ImportFrom):
                target = resolve(module, is_package, sub)
                for alias in sub.names:
                    full = f"{target}.{alias.name}"
                    out.add(full if full in names else target)
            elif isinstance(sub, ast.Import):
                out |= {a.name for a in sub.names}
    return {m for m in out if m in names and m != module}


def test_no_import_cycles():
    graph = {module_name(p): top_level_imports(p) for p in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_no_function_level_imports_of_our_own_modules_outside_the_cli():
    """No import of an hpsearch module inside a function (they broke no cycle), except in
    cli.py, which imports each command's module when the command runs: `hpsearch --help` and
    `hpsearch status` do not pay for MLflow (4.5 s cold here) or matplotlib (0.5 s)."""
    found = []
    for path in MODULES:
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for sub in ast.walk(node):
                    ours = (isinstance(sub, ast.ImportFrom) and (sub.level > 0 or (
                        sub.module or "").startswith("hpsearch"))) or (
                        isinstance(sub, ast.Import) and any(
                            a.name.startswith("hpsearch") for a in sub.names))
                    if ours:
                        found.append(f"{path.relative_to(PACKAGE)}:{sub.lineno} "
                                     f"{ast.unparse(sub)}")
    allowed = {  # with the reason beside it in the code
        "__init__.py": "the public API imports load_spec when first used, not with the package",
        "model/serving.py": "the MLflow model is loaded from code: its imports run in load_context",
    }
    found = [f for f in found if f.split(":")[0] not in allowed]
    assert not found, found


COMMANDS = {"hpsearch.report.report", "hpsearch.report.status", "hpsearch.study.recover",
            "hpsearch.export", "hpsearch.report.followup"}


def test_a_command_module_never_imports_another():
    found = {m: sorted(imports & COMMANDS) for p in MODULES
             if (m := module_name(p)) != "hpsearch.cli" and (imports := top_level_imports(p))
             & COMMANDS}
    assert not found, found


PRIVATE_OPTUNA = re.compile(r"\._storage\b|optuna\.storages\._|optuna\.storages\.journal\._|"
                            r"\._get_bracket_id|pruners\._")


def test_private_optuna_api_only_in_the_store():
    users = [f"{p.relative_to(PACKAGE)}:{i}" for p in MODULES if p.name != "store.py"
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if PRIVATE_OPTUNA.search(line)]
    assert not users, users


def test_an_mlflow_client_only_in_tracking():
    """tracking.tracker's Tracker (with its model half, tracking.logged_models.ModelStore)."""
    users = [f"{p.relative_to(PACKAGE)}:{i}" for p in MODULES
             if p.relative_to(PACKAGE).parts[0] != "tracking"
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if "MlflowClient" in line or re.search(r"\.client\b", line)]
    assert not users, users


def test_modules_stay_a_few_hundred_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) > 460}
    assert not long, long
    assert len((PACKAGE / "search" / "sweep.py").read_text().splitlines()) < 200


@pytest.mark.slow
@pytest.mark.parametrize("first", [
    "study.store", "search.worker", "search.trial", "model.checkpoint", "model.estimator",
    "tracking.tracker", "report.report", "export", "cli", "report.followup", "model.ensemble",
    "report.advice", "study.noise", "search.reseed"])
def test_any_module_imports_first_in_a_fresh_interpreter(first):
    done = subprocess.run([sys.executable, "-c", f"import hpsearch.{first}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
