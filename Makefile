# hpsearch: `make sweep` runs a quick sweep, `make test` runs the tests. Both set themselves up.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-setup
TEST_WORKERS ?= 2  # pytest-xdist processes: the suite is CPU-bound, one process per core
PYTEST_ARGS ?= -n $(TEST_WORKERS) --dist loadfile --durations=15  # slowest listed: < 15 min
SWEEP ?= sweeps/quickstart.yaml
TRIALS ?=
WORKERS ?=
NAME ?= $(shell sed -n 's/^name:[[:space:]]*//p' $(SWEEP) 2>/dev/null | head -n 1)
SWEEP_ARGS = $(if $(TRIALS),--trials $(TRIALS)) $(if $(WORKERS),--workers $(WORKERS))

.PHONY: help setup slurm sysdeps sweep status report export next ui dashboard demo-distributed docs-image test test-fast lint bench bench-efficiency clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install hpsearch (editable) with the dev tools and optuna-dashboard

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,dashboard]"
	touch $(STAMP)

sweep: setup ## run (or resume) a sweep: SWEEP=sweeps/x.yaml TRIALS=N WORKERS=K (quickstart)
	$(BIN)/hpsearch sweep $(SWEEP) $(SWEEP_ARGS)

status: setup ## the trials of the sweep's study (NAME= or the name in SWEEP)
	$(BIN)/hpsearch status $(NAME)

report: setup ## write reports/NAME/index.html for the sweep's study (NAME= or SWEEP=)
	$(BIN)/hpsearch report $(NAME)

export: setup ## export the best model of the sweep's study to exports/NAME (NAME= or SWEEP=)
	$(BIN)/hpsearch export $(NAME)

next: setup ## write sweeps/NAME-next.yaml, the follow-up spec the report recommends (NAME= or SWEEP=)
	$(BIN)/hpsearch next $(NAME) $(if $(FORCE),--force)

ui: setup ## MLflow UI on http://127.0.0.1:5000 over the embedded store
	$(BIN)/hpsearch ui

dashboard: setup ## optuna-dashboard on http://127.0.0.1:8080 over the study storage
	$(BIN)/hpsearch dashboard $(NAME)

docs-image: setup ## docs/images/verdicts.png, README's picture (a quickstart sweep's report)
	bash scripts/docs-image.sh

demo-distributed: setup ## 3 workers on a local PostgreSQL + MLflow server (root; see docs/scaling.md)
	bash scripts/demo-distributed.sh

slurm: ## a one-node Slurm on this machine for `hpsearch launch slurm` (root; scripts/slurm.sh)
	bash scripts/slurm.sh

sysdeps: ## install/start what the tests need from the machine (root: apt-get; see README)
	PYTHON=$(PYTHON) bash scripts/sysdeps.sh

test: sysdeps setup ## run every test, slow ones included (what CI runs)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: sysdeps setup ## run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup ## ruff and mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: setup ## run the benchmarks (figures go in docs/benchmarks.md by hand, with the command)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/optimizer_cost.py
	$(BIN)/python bench/tracking_overhead.py
	$(BIN)/python bench/trial_overhead.py
	$(BIN)/python bench/parallel_throughput.py --trials 12
	$(BIN)/python bench/pruning.py

bench-efficiency: setup ## hpsearch vs Optuna + scikit-learn on Fashion-MNIST, 20 min each (~45 min)
	$(BIN)/python bench/sweep_efficiency.py --budget 1200 --out bench-out

clean: ## remove the virtual environment, caches and everything under mlruns/
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
	find mlruns -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
