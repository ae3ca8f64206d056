"""`hpsearch launch slurm|k8s`: what it refuses (one line, exit 2, nothing written), the files it
writes (no password in them), a Kubernetes Job's container command run here against PostgreSQL
and an MLflow server, and a job array on the real one-node Slurm that `make test` starts
(scripts/slurm.sh): exact budget, one parent run, one child run per trial, and `scancel` of one
task mid-trial losing nothing."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import trials_running_with_epochs, wait_until

SPEC = """\
name: {name}
data: {{dataset: digits, seed: 0}}
training: {{max_epochs: 3, batch_size: 64, early_stopping_patience: null}}
budget: {{n_trials: {trials}}}
sampler: {{name: random, seed: 0}}
pruner: none
space:
  learning_rate: {{type: float, low: 1.0e-3, high: 0.05, log: true}}
  hidden_size: {{type: int, low: 8, high: 32}}
"""
PASSWORD = "hpsearch:hpsearch@"  # the test role's, in databases' URLs


def hp(where: Path, *args: str, env: dict[str, str] | None = None,
       path: str | None = None) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k not in ("HPSEARCH_STORAGE",
                                                           "MLFLOW_TRACKING_URI")}
    e |= env or {}
    if path is not None:
        e["PATH"] = path
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], cwd=where, env=e,
                          capture_output=True, text=True, timeout=600)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    return lines[0]


def study_names(storage: str) -> list[str]:
    import optuna

    from hpsearch.study.store import open_storage

    store = open_storage(storage)
    try:
        return optuna.get_all_study_names(store)
    finally:
        store.engine.dispose()  # type: ignore[attr-defined]


def test_what_other_machines_cannot_reach_is_refused(tmp_path):
    (tmp_path / "small.yaml").write_text(SPEC.format(name="small", trials=6))
    for kind in (["slurm"], ["k8s", "--image", "hpsearch:1"]):
        line = one_line_error(hp(tmp_path, "launch", *kind, "small.yaml", "--workers", "3"))
        assert "optuna.journal is a file on this machine" in line, line
        assert "--storage postgresql://" in line, line
    line = one_line_error(hp(tmp_path, "launch", "slurm", "small.yaml", "--workers", "3",
                             "--storage", "postgresql://h@127.0.0.1:1/x"))
    assert "mlflow.db is a file on this machine" in line and "--tracking-uri http://" in line
    assert not (tmp_path / "launch").exists() and not (tmp_path / "mlruns").exists()


def test_bad_input_is_one_line_and_nothing_is_written(databases, tmp_path):
    (tmp_path / "small.yaml").write_text(SPEC.format(name="small", trials=2))
    stores = ["--storage", databases[0], "--tracking-uri", "none"]
    slurm = ["launch", "slurm", "small.yaml", *stores]
    assert "0 is not in the range" in one_line_error(hp(tmp_path, *slurm, "--workers", "0"))
    line = one_line_error(hp(tmp_path, *slurm, "--workers", "2", "--time", "2h"))
    assert "--time '2h'" in line
    line = one_line_error(hp(tmp_path, *slurm, "--workers", "2", "--time", "1"))
    assert "--grace 120: the stopping signal comes 120 s before the time limit (Slurm may " \
        "send it up to 60 s earlier), and --time 1 is 60 s" in line, line
    line = one_line_error(hp(tmp_path, *slurm, "--workers", "2", "--time", "3"))  # 120+60 s
    assert "--time 3 is 180 s" in line, line
    line = one_line_error(hp(tmp_path, *slurm, "--workers", "2", "--submit",
                             path=str(tmp_path / "no-bin")))
    assert "sbatch is not on PATH" in line
    line = one_line_error(hp(tmp_path, "launch", "k8s", "small.yaml", *stores, "--workers", "2",
                             "--image", "x", "--memory", "lots"))
    assert "--memory 'lots'" in line
    line = one_line_error(hp(tmp_path, "launch", "k8s", "small.yaml", *stores, "--workers", "2",
                             "--image", "bad image"))
    assert "--image 'bad image'" in line
    assert not (tmp_path / "launch").exists() and "small" not in study_names(databases[0])

    # a study whose budget is met: nothing to launch, until --trials asks for more
    done = hp(tmp_path, "sweep", "small.yaml", "--workers", "1", *stores)
    assert done.returncode == 0, done.stderr
    line = one_line_error(hp(tmp_path, *slurm, "--workers", "2"))
    assert "study small already holds its 2 trials" in line and "--trials N" in line, line
    assert not (tmp_path / "launch").exists()
    done = hp(tmp_path, *slurm, "--workers", "2", "--trials", "3")
    assert done.returncode == 0, done.stderr
    assert "2 workers asked, 1 trial(s) left: launching 1" in done.stdout, done.stdout
    assert "#SBATCH --array=0-0" in (tmp_path / "launch" / "small.sbatch").read_text()


def test_the_sbatch_file_keeps_passwords_out(databases, tmp_path):
    import optuna

    from hpsearch.study.store import StudyKey, open_storage

    (tmp_path / "arr.yaml").write_text(SPEC.format(name="arr", trials=6))
    # the password as a query parameter this time: masking hides it, so must the file
    user, rest = databases[0].split("://", 1)[1].split("@", 1)
    storage = f"postgresql://{user.split(':')[0]}@{rest}?password={user.split(':')[1]}"
    done = hp(tmp_path, "launch", "slurm", "arr.yaml", "--workers", "10", "--storage",
              storage, "--tracking-uri", "none", "--time", "UNLIMITED")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "10 workers asked, 6 trial(s) left: launching 6" in out
    assert "HPSEARCH_STORAGE has a password in it, so launch/arr.sbatch leaves it out" in out
    assert "submit it: sbatch launch/arr.sbatch" in out and "password=hpsearch" not in out
    assert "note: the storage postgresql://hpsearch@127.0.0.1" in out  # loopback: this machine
    text = (tmp_path / "launch" / "arr.sbatch").read_text()
    assert "password=" not in text and "postgresql" not in text
    for line in ("#SBATCH --array=0-5", "#SBATCH --time=UNLIMITED",
                 "#SBATCH --signal=B:TERM@120", "#SBATCH --cpus-per-task=1",
                 'export OPENBLAS_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
                 "export MLFLOW_TRACKING_URI=none",
                 f"exec {sys.executable} -m hpsearch worker arr"):
        assert line in text.splitlines(), (line, text)
    assert subprocess.run(["bash", "-n", "launch/arr.sbatch"], cwd=tmp_path).returncode == 0
    # run where the storage was not exported: it says so, and starts no worker
    env = {k: v for k, v in os.environ.items() if k != "HPSEARCH_STORAGE"}
    ran = subprocess.run(["bash", "launch/arr.sbatch"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode != 0 and "set HPSEARCH_STORAGE where you run sbatch" in ran.stderr
    # the study is prepared, as `hpsearch sweep` would: the workers only join
    study = optuna.load_study(study_name="arr", storage=open_storage(databases[0]))
    assert study.user_attrs[StudyKey.N_TRIALS] == 6 and not study.trials
    assert study.user_attrs[StudyKey.PARENT_RUN_ID]
    said = hp(tmp_path, "status", "arr", "--storage", databases[0])
    assert said.returncode == 0 and "arr: no trial started yet, 0 of 6" in said.stdout, said


def test_a_kubernetes_job_whose_command_joins_the_study(databases, mlflow_server, tmp_path):
    import optuna
    import yaml
    from mlflow.tracking import MlflowClient

    from hpsearch.study.store import budget_counts, open_storage

    (tmp_path / "kube.yaml").write_text(SPEC.format(name="Kube_1", trials=4))
    secret = {"HPSEARCH_STORAGE": databases[0], "MLFLOW_TRACKING_URI": mlflow_server}
    launch = ["launch", "k8s", "kube.yaml", "--workers", "2", "--image",
              "registry.local/hpsearch:1", "--cpus-per-task", "2"]
    # the URIs given as options: the Secret's command reads the shell's variables, so it says
    done = hp(tmp_path, *launch, "--storage", databases[0], "--tracking-uri", mlflow_server)
    assert done.returncode == 0, done.stderr
    assert "first: export HPSEARCH_STORAGE=... (the storage used here, postgresql://hpsearch:" \
        "***@" in done.stdout and "$HPSEARCH_STORAGE is unset" in done.stdout, done.stdout
    done = hp(tmp_path, *launch, env=secret)
    assert done.returncode == 0, done.stderr
    name = "hpsearch-kube-1-" + hashlib.sha256(b"Kube_1").hexdigest()[:6]  # changed: hashed
    assert (f'kubectl create secret generic {name} --from-literal=HPSEARCH_STORAGE='
            '"$HPSEARCH_STORAGE"') in done.stdout and PASSWORD not in done.stdout
    assert "first: export" not in done.stdout
    text = (tmp_path / "launch" / "Kube_1.yaml").read_text()
    assert "postgresql" not in text and mlflow_server not in text
    docs = list(yaml.safe_load_all(text))
    assert len(docs) == 1
    job = docs[0]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"] == name
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 2
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "OnFailure" and pod["terminationGracePeriodSeconds"] >= 60
    (container,) = pod["containers"]
    assert container["image"] == "registry.local/hpsearch:1"
    assert container["command"] == ["hpsearch", "worker", "Kube_1"]
    assert container["envFrom"] == [{"secretRef": {"name": name}}]
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}

    # the container's command, run here with the pod's environment (the Secret and env)
    env = {k: v for k, v in os.environ.items() if k not in secret} | secret
    env |= {e["name"]: e["value"] for e in container["env"]}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    elsewhere = tmp_path / "pod"
    elsewhere.mkdir()
    ran = subprocess.run(container["command"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "study Kube_1 is complete and its parent run closed" in ran.stdout, ran.stdout
    trials = optuna.load_study(study_name="Kube_1",
                               storage=open_storage(databases[0])).get_trials()
    assert budget_counts(trials)[0] == 4 and len(trials) == 4
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("Kube_1")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("hpsearch.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("hpsearch.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["optuna.trial.number"]) for r in children) == [0, 1, 2, 3]


# -- a real Slurm --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def slurm() -> str:
    """The partition of the one-node Slurm scripts/slurm.sh starts (`make test` runs it)."""
    if os.environ.get("HPSEARCH_TEST_SLURM") == "0":
        pytest.skip("HPSEARCH_TEST_SLURM=0: no Slurm on this machine")
    if shutil.which("sinfo") is None:
        pytest.fail("no Slurm here: `make test` starts one (scripts/slurm.sh); by hand, as "
                    "root: bash scripts/slurm.sh")
    states = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True)
    if not any(s in states.stdout for s in ("idle", "mixed", "allocated", "completing")):
        pytest.fail(f"Slurm has no node up: {states.stdout}{states.stderr} (bash "
                    f"scripts/slurm.sh brings it up)")
    return states.stdout.split()[0].rstrip("*")


@pytest.mark.parametrize("submit", ["--submit", "--dry-run"])
def test_a_partition_slurm_refuses_is_one_line_and_prepares_nothing(slurm, databases, tmp_path,
                                                                    submit):
    (tmp_path / "part.yaml").write_text(SPEC.format(name="part", trials=4))
    line = one_line_error(hp(tmp_path, "launch", "slurm", "part.yaml", "--workers", "2",
                             "--storage", databases[0], "--tracking-uri", "none", submit,
                             "--partition", "no-such-partition"))
    assert "sbatch refused launch/part.sbatch" in line and "invalid partition" in line, line
    assert "part" not in study_names(databases[0]) and not (tmp_path / "launch").exists()


def squeue(job: str) -> list[str]:
    """The job's array tasks still in the queue (pending or running)."""
    done = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T"], capture_output=True,
                          text=True)
    return done.stdout.split("\n") if done.stdout.strip() else []


@pytest.mark.slow
def test_a_job_array_on_slurm_with_one_task_cancelled_mid_trial(slurm, databases, mlflow_server,
                                                                  tmp_path, request):
    import optuna
    from mlflow.tracking import MlflowClient

    from hpsearch.study.store import TrialKey, budget_counts, open_storage

    (tmp_path / "arr.yaml").write_text(SPEC.format(name="slurmy", trials=8))
    release = tmp_path / "release"
    # trials 0 and 1 train until released: each holds its task, so that the task running trial
    # 0 is cancelled mid-trial while another still runs and can take the retry
    env = {"HPSEARCH_TEST_ENDLESS_TRIALS": "0,1", "HPSEARCH_TEST_RELEASE": str(release),
           "HPSEARCH_CHECKPOINTS": str(tmp_path / "cache")}
    done = hp(tmp_path, "launch", "slurm", "arr.yaml", "--workers", "3", "--submit",
              "--storage", databases[0], "--tracking-uri", mlflow_server, "--partition", slurm,
              "--time", "30", env=env)
    submitted = re.search(r"submitted job (\d+) \(3 array tasks\)", done.stdout)
    if submitted:
        request.addfinalizer(lambda: subprocess.run(["scancel", submitted[1]]))
    assert done.returncode == 0 and submitted, done.stdout + done.stderr
    job = submitted[1]
    assert PASSWORD not in done.stdout and PASSWORD not in (tmp_path / "launch" /
                                                            "slurmy.sbatch").read_text()
    assert f"squeue --job {job}" in done.stdout
    storage = open_storage(databases[0])

    def trials() -> list:
        return optuna.load_study(study_name="slurmy", storage=storage).get_trials()

    trials_running_with_epochs(trials, [0, 1])
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("slurmy")

    def run_of(number: int) -> object:
        found = client.search_runs([exp.experiment_id],
                                   f"tags.`optuna.trial.number` = '{number}'")
        return (bool(found), found[0] if found else "no run yet")
    task = wait_until(lambda: run_of(0), "trial 0's run").data.tags["slurm.job"]
    assert task.startswith(f"{job}_"), task
    subprocess.run(["scancel", task], check=True)
    wait_until(lambda: (trials()[0].state.name == "FAIL", trials()[0].state.name),
               "trial 0 closed by the task's SIGTERM")
    release.touch()
    wait_until(lambda: (not squeue(job), squeue(job)), f"job {job}'s tasks to end")
    found = trials()
    counted, _, _ = budget_counts(found)
    states = {t.number: t.state.name for t in found}
    assert counted == 8 and "RUNNING" not in states.values(), states
    assert states[0] == "FAIL" and "SIGTERM" in found[0].user_attrs[TrialKey.REASON]
    retry = next(t for t in found if t.user_attrs.get(TrialKey.RETRY_OF) == 0)
    assert retry.state.name == "COMPLETE" and retry.params == found[0].params

    logs = {p.name: p.read_text() for p in (tmp_path / "launch").glob(f"slurmy-{job}_*.out")}
    cancelled = f"slurmy-{task}.out"
    assert "interrupted by SIGTERM: the running trial was closed" in logs[cancelled], logs
    assert sum("worker done" in text for text in logs.values()) >= 1, logs
    assert PASSWORD not in "".join(logs.values())

    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("hpsearch.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("hpsearch.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", [
        (r.data.tags.get("hpsearch.role"), r.info.status) for r in runs]
    numbers = sorted(int(r.data.tags["optuna.trial.number"]) for r in children)
    assert numbers == sorted(states), numbers  # one child run per trial, no duplicate
    for r in children:  # the cancelled trial's run KILLED (a signal), the others FINISHED
        number = int(r.data.tags["optuna.trial.number"])
        assert r.info.status == ("KILLED" if number == 0 else "FINISHED"), (number, r.info)
        assert r.data.tags["slurm.job"].startswith(f"{job}_")


def test_kubernetes_names_are_valid_and_never_shared():
    from hpsearch.search.launch import k8s_name

    names = ["fashion-mnist", "K8s_Test.v1", "k8s-test-v1", "x" * 80 + "a", "x" * 80 + "b", "_"]
    made = [k8s_name(n) for n in names]
    assert made[0] == "hpsearch-fashion-mnist"  # already valid: kept as it is
    assert len(set(made)) == len(made), made
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", m) for m in made), made
