"""The code's layout keeps its promises (docs/architecture.md): a package per layer, imports only
downwards (no package cycle, no module cycle), each package's ``__init__`` saying its job and what
it may import (and the code keeping to it), no function-level imports outside the CLI, private
Optuna API only in the store, an MLflow client only in tracking/, click only in the CLI, and
modules of at most 400 lines."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hpsearch"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))

# Lowest first. A module may import its own package and the layers below its own, never a layer
# above, nor another package of the same layer (report and export read a study side by side).
LAYERS = [
    {"errors", "_version"},
    {"nn"},
    {"model"},
    {"diagnosis"},
    {"spec"},
    {"tracking"},
    {"study"},
    {"search"},
    {"report", "export"},
    {"cli", "api"},
    {"__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
PACKAGES = sorted(n for n in RANK if (PACKAGE / n).is_dir())


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit(module: str) -> str:
    """The package (or top-level module) ``hpsearch.x.y`` belongs to: ``x``."""
    return module.split(".")[1] if "." in module else ""


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


NAMES = {module_name(p) for p in MODULES}


def imports(path: Path, top_level_only: bool = True) -> set[str]:
    """The hpsearch modules ``path`` imports: when it is imported (not under TYPE_CHECKING), or
    anywhere in it with ``top_level_only=False``."""
    return imports_of(path.read_text(), module_name(path), path.name == "__init__.py",
                      top_level_only)


def imports_of(source: str, module: str, is_package: bool, top_level_only: bool) -> set[str]:
    tree = ast.parse(source)
    if top_level_only:
        nodes = []
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            nodes += [node] if not isinstance(node, ast.If) else node.body
    else:
        nodes = list(ast.walk(tree))
    out: set[str] = set()
    for sub in nodes:
        if isinstance(sub, ast.ImportFrom):
            target = resolve(module, is_package, sub)
            for alias in sub.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in NAMES else target)
        elif isinstance(sub, ast.Import):
            out |= {a.name for a in sub.names}
    return {m for m in out if m in NAMES and m != module and m != "hpsearch"}


def test_every_module_belongs_to_a_layer():
    assert {unit(m) for m in NAMES if m != "hpsearch"} <= set(RANK), \
        sorted({unit(m) for m in NAMES} - set(RANK) - {""})


def upward_imports(module: str, targets: set[str]) -> list[str]:
    mine = unit(module)
    return [f"{module} imports {t}" for t in sorted(targets)
            if mine and unit(t) != mine and RANK[unit(t)] >= RANK[mine]]


def test_imports_only_go_down():
    """Anywhere in a module (function-level and TYPE_CHECKING imports too): its own package or a
    lower layer. The public API (hpsearch/__init__.py) sits outside the layers."""
    upward = [u for p in MODULES
              for u in upward_imports(module_name(p), imports(p, top_level_only=False))]
    assert not upward, upward


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_package_cycles():
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        mine = unit(module_name(path))
        graph.setdefault(mine, set()).update(
            t for t in map(unit, imports(path, top_level_only=False)) if t != mine)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_module_import_cycles():
    graph = {module_name(p): imports(p) for p in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_layer_checks_fail_on_an_upward_import_and_a_cycle():
    """The checks above can fail: a model module that imports the tracker (in a function, too)
    is upward, report and export may not import each other, and a pair of packages that import
    each other is a cycle."""
    source = "def f():\n    from ..tracking.tracker import Tracker\n"
    found = imports_of(source, "hpsearch.model.x", False, top_level_only=False)
    assert upward_imports("hpsearch.model.x", found) == [
        "hpsearch.model.x imports hpsearch.tracking.tracker"]
    assert upward_imports("hpsearch.report.x", {"hpsearch.export.export"})
    assert not upward_imports("hpsearch.report.x", {"hpsearch.search.reseed"})
    assert _cycle({"model": {"tracking"}, "tracking": {"model"}}) == [
        "model", "tracking", "model"]


MAY_IMPORT = re.compile(r"May import:(.*?)(?:;|\.\s|\.$)", re.S)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_its_job_and_what_it_may_import(package):
    """Its __init__'s docstring lists its modules and what it may import; its modules import
    only that (and what the docstring names is below it)."""
    init = PACKAGE / package / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    for path in sorted((PACKAGE / package).glob("*.py")):
        if path.name != "__init__.py":
            assert f"``{path.stem}``" in doc, f"{init} does not say what {path.name} is for"
    found = MAY_IMPORT.search(doc)
    assert found, f"{init}: no 'May import:' sentence"
    allowed = set(re.findall(r"``(\w+)``", found.group(1))) & set(RANK)
    assert all(RANK[a] < RANK[package] for a in allowed), (package, allowed)
    for path in (PACKAGE / package).rglob("*.py"):
        used = {unit(t) for t in imports(path, top_level_only=False)} - {package}
        assert used <= allowed, f"{path.relative_to(PACKAGE)} imports {used - allowed}"


def test_the_public_api_is_the_package_and_costs_no_optuna_or_mlflow():
    """What README.md shows users import from hpsearch; importing it loads neither Optuna nor
    MLflow nor matplotlib nor scikit-learn (`hpsearch --help`, `import hpsearch` and every
    command's start stay quick)."""
    code = ("import sys, hpsearch\n"
            "heavy = sorted(m for m in ('optuna', 'mlflow', 'matplotlib', 'sklearn')\n"
            "               if m in sys.modules)\n"
            "from hpsearch import (MLPClassifier, EnsembleClassifier, load, load_spec, datasets,\n"
            "                      HpsearchError, SpecError, DataError, CheckpointError,\n"
            "                      StorageError, __version__)\n"
            "assert load_spec('sweeps/quickstart.yaml').name == 'quickstart'\n"
            "assert callable(datasets.load) and callable(datasets.split)\n"
            "print(heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=PACKAGE.parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_no_function_level_imports_of_our_own_modules_outside_the_cli():
    """No import of an hpsearch module inside a function (they broke no cycle), except in
    cli/, which imports each command's module when the command runs: `hpsearch --help` and
    `hpsearch status` do not pay for MLflow (4.5 s cold here) or matplotlib (0.5 s)."""
    found = []
    for path in MODULES:
        if path.relative_to(PACKAGE).parts[0] == "cli":
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
        "__init__.py": "the public API imports load_spec and sweep when first used",
        "model/serving.py": "the MLflow model is loaded from code: its imports run in load_context",
        "tracking/writer.py": "the writer's process imports MLflow in serve: the sweep command "
                              "starts it before its own imports",
    }
    found = [f for f in found if f.split(":")[0] not in allowed]
    assert not found, found


COMMANDS = {"hpsearch.report.report", "hpsearch.report.status", "hpsearch.study.recover",
            "hpsearch.export.export", "hpsearch.export.predict", "hpsearch.report.followup",
            "hpsearch.report.dashboard", "hpsearch.spec.init", "hpsearch.study.proxy"}


def test_a_command_module_never_imports_another():
    found = {m: sorted(imports(p) & COMMANDS) for p in MODULES  # but the two front doors
             if unit(m := module_name(p)) not in ("cli", "api")
             and imports(p) & COMMANDS}
    assert not found, found


PRIVATE_OPTUNA = re.compile(r"\._storage\b|optuna\.storages\._|optuna\.storages\.journal\._|"
                            r"\._get_bracket_id|pruners\._")


def test_private_optuna_api_only_in_the_store():
    users = [f"{p.relative_to(PACKAGE)}:{i}" for p in MODULES if p != PACKAGE / "study" / "store.py"
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


def test_click_only_in_the_cli():
    users = [str(p.relative_to(PACKAGE)) for p in MODULES
             if p.relative_to(PACKAGE).parts[0] != "cli"
             and re.search(r"^\s*(import click|from click)", p.read_text(), re.M)]
    assert not users, users


def test_modules_stay_a_few_hundred_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
    assert len((PACKAGE / "search" / "sweep.py").read_text().splitlines()) < 200


@pytest.mark.slow
@pytest.mark.parametrize("first", [  # the command modules and the deepest of each layer
    "cli", "study.store", "study.recover", "search.worker", "search.sweep", "model.checkpoint",
    "model.ensemble", "model.serving", "spec.datasets", "tracking.trial_log", "report.report",
    "report.status", "report.followup", "export.export", "export.predict"])
def test_any_module_imports_first_in_a_fresh_interpreter(first):
    done = subprocess.run([sys.executable, "-c", f"import hpsearch.{first}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
