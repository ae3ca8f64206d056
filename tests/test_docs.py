"""The docs cannot drift: every `sh` and `python` block of README.md and docs/*.md runs, in the
order a reader meets it, in a scratch copy of the project whose shipped specs are shrunk to a
few short trials. Servers a block starts (the MLflow UI, optuna-dashboard, `mlflow models serve`)
run in the background until the document ends; a block after them talks to them.

Blocks that are not run say why here: a `console` block is a recipe for other machines or for
root (docs/scaling.md; the same steps run in tests/test_distributed.py), and a line in SKIP is a
command a test cannot run (the test suite itself)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)  # the environment running the tests (make setup's .venv on CI)
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
COMMAND_FENCES = {"sh", "bash", "shell", "console", "python"}
RUN = {"sh", "python"}
SKIP = {"make test": "the test suite itself: CI runs it, a test cannot run its own suite"}
NOT_RUN = {  # (document, the block's first line): why it is not run here
    ("docs/scaling.md", "apt-get install postgresql"):
        "root on a database host; tests/test_distributed.py starts its own databases",
    ("docs/scaling.md", "pip install -e '.[postgres]'     # hpsearch with the PostgreSQL driver "
                        "(psycopg 3)"):
        "a tracking server for other machines (0.0.0.0); tests/test_distributed.py runs one on "
        "127.0.0.1",
    ("docs/scaling.md", "git clone ... && cd hpsearch && make setup && .venv/bin/pip install -e "
                        "'.[postgres]'"):
        "setting up another machine",
    ("docs/scaling.md", ".venv/bin/hpsearch sweep sweeps/fashion-mnist.yaml --trials 200 "
                        "--workers 2"):
        "a 200-trial sweep on a shared PostgreSQL; tests/test_distributed.py runs the same "
        "commands small",
    ("docs/scaling.md", ".venv/bin/hpsearch worker fashion-mnist"):
        "a worker on another machine; tests/test_distributed.py starts three",
    ("docs/scaling.md", ".venv/bin/hpsearch launch slurm sweeps/fashion-mnist.yaml --workers 8 "
                        "--cpus-per-task 2 \\"):
        "a cluster's login node and shared servers; tests/test_launch.py submits the same "
        "command small to the one-node Slurm of scripts/slurm.sh",
    ("docs/scaling.md", ".venv/bin/hpsearch launch k8s sweeps/fashion-mnist.yaml --workers 8 "
                        "--cpus-per-task 2 \\"):
        "a Kubernetes cluster; tests/test_launch.py checks the manifest and runs its command",
    ("docs/scaling.md", ".venv/bin/hpsearch storage-proxy --storage \"$HPSEARCH_STORAGE\" --host "
                        "0.0.0.0 --port 13000 --threads 8"):
        "a proxy for other machines (0.0.0.0); tests/test_many_workers.py runs one on 127.0.0.1",
}
SERVER = re.compile(r"^(?:\w+=\S+\s+)*(make ui|make dashboard|hpsearch ui|hpsearch dashboard|"
                    r"mlflow models serve|mlflow ui|mlflow server)\b")
DEFAULT_PORT = {"make ui": 5000, "hpsearch ui": 5000, "mlflow ui": 5000, "mlflow server": 5000,
                "mlflow models serve": 5000, "make dashboard": 8080, "hpsearch dashboard": 8080}


def blocks(doc: str) -> list[tuple[str, str]]:
    """(language, text) of every fenced block of ``doc``."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer((ROOT / doc).read_text())]


def shrink(spec: Path) -> None:
    """A shipped spec made small: 3 trials of at most 3 epochs, one worker, no timeout, no
    stop rule, an export that trains nothing more than it must."""
    data = yaml.safe_load(spec.read_text())
    budget = data.setdefault("budget", {})
    budget.update(n_trials=min(int(budget.get("n_trials", 3)), 3), workers=1)
    for key in ("timeout", "stop", "patience_trials"):
        budget.pop(key, None)
    training = data.setdefault("training", {})
    training["max_epochs"] = min(int(training.get("max_epochs", 3)), 3)
    if "export" in data:
        data["export"].update(in_budget=False, reseed=0)
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


def scratch(where: Path) -> Path:
    """A copy of what the docs' commands use: the shipped specs (shrunk), the Makefile and its
    scripts, and the project's virtual environment (linked, already set up)."""
    shutil.copytree(ROOT / "sweeps", where / "sweeps",
                    ignore=shutil.ignore_patterns("*-next*.yaml"))
    for spec in (where / "sweeps").glob("*.yaml"):
        shrink(spec)
    shutil.copy(ROOT / "Makefile", where)
    shutil.copytree(ROOT / "scripts", where / "scripts")
    shutil.copy(ROOT / "pyproject.toml", where)
    os.utime(where / "pyproject.toml", (0, 0))  # older than .venv's stamp: make sets up nothing
    (where / ".venv").symlink_to(VENV)
    return where


def shell_script(text: str, n: int) -> str:
    """A block's lines for bash: servers started in the background (their process groups in
    ./servers) and waited for; the lines of SKIP replaced by a note."""
    out = ["set -eo pipefail"]
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):  # one logical line
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        command = line.split("#")[0].strip()
        if command in SKIP:
            out.append(f"echo {shlex.quote('skipped: ' + command)}")
        elif (server := SERVER.match(command)) is not None:
            port = re.search(r"(?:-p|--port)\s+(\d+)", command)
            port_n = int(port.group(1)) if port else DEFAULT_PORT[server.group(1)]
            log = f"server-{n}-{len(out)}.log"
            out += [f"setsid bash -c {shlex.quote(command)} > {log} 2>&1 &",
                    "echo $! >> servers",
                    f"for _ in $(seq 1200); do curl -s -o /dev/null http://127.0.0.1:{port_n}/ "
                    f"&& break; sleep 0.25; done",
                    f"curl -s -o /dev/null http://127.0.0.1:{port_n}/ || "
                    f"{{ echo 'server on port {port_n} never answered:'; cat {log}; exit 1; }}"]
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def run_doc(doc: str, where: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "HPSEARCH_STORAGE", "VIRTUAL_ENV")}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env['PATH']}"
    try:
        for n, (lang, text) in enumerate(b for b in blocks(doc) if b[0] in RUN):
            if lang == "python":
                (where / f"block-{n}.py").write_text(text)
                argv = [str(VENV / "bin" / "python"), f"block-{n}.py"]
            else:
                (where / f"block-{n}.sh").write_text(shell_script(text, n))
                argv = ["bash", f"block-{n}.sh"]
            done = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True,
                                  timeout=1200)
            said = f"{doc}, block {n}:\n{text}\n--- stdout:\n{done.stdout[-3000:]}\n" \
                   f"--- stderr:\n{done.stderr[-3000:]}"
            assert done.returncode == 0, said
            assert "Traceback" not in done.stdout + done.stderr, said
    finally:
        pids = (where / "servers").read_text().split() if (where / "servers").exists() else []
        for pid in pids:
            try:
                os.killpg(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass


RUNNABLE = [d for d in DOCS if any(lang in RUN for lang, _ in blocks(d))]


def test_every_command_block_is_run_or_says_why_not():
    found, unrun = set(), set()
    for doc in DOCS:
        for lang, text in blocks(doc):
            first = text.strip().splitlines()[0] if text.strip() else ""
            if lang in COMMAND_FENCES - RUN:
                unrun.add((doc, first))
            found.add(lang)
    assert unrun == set(NOT_RUN), (unrun ^ set(NOT_RUN))
    assert not found & {"bash", "shell"}, "write runnable blocks as ```sh"
    text = "".join(t for d in DOCS for lang, t in blocks(d) if lang == "sh")
    assert all(re.search(rf"^{re.escape(c)}\b", text, re.M) for c in SKIP), SKIP
    assert set(RUNNABLE) >= {"README.md", "docs/guide.md", "docs/tracking.md", "docs/export.md"}


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUNNABLE)
def test_the_commands_of_a_document_run(doc, tmp_path):
    run_doc(doc, scratch(tmp_path))
