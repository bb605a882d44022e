# Two commands set everything up: `make train` and `make test`.
# Both (re)build the project-local virtual environment .venv when it is missing or when
# pyproject.toml changed since it was built.
#
#   make test       the fast tier (a few minutes): every test not marked slow or slurm, in-process
#   make test-all   everything (CI, .ci/run): also the tests that launch train.py/eval.py/scripts,
#                   DDP ranks and the real MiniLM example, and, as root, a local Slurm cluster
#   make lint       ruff check and ruff format --check (configured in pyproject.toml)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.peftlab-installed
ARGS ?=
PYTEST_ARGS ?=
FAST_TIER := not slow and not slurm
LINTED := src tests scripts train.py eval.py predict.py

.PHONY: train test test-all lint venv clean-logs

venv: $(STAMP)

# pip prints one line per package it collects and installs (the first time takes about 2 minutes);
# pipefail keeps pip's own exit status through the filter that drops one harmless pip notice.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing peftlab and its dependencies into $(VENV) (first time: about 2 minutes; progress below) ..."
	@$(PY) -m pip install --disable-pip-version-check --progress-bar on -e ".[dev]" 2>&1 | grep --line-buffered -v "is ignored: it is neither a file nor a directory"
	@$(PY) -c "import peftlab, lightning, hydra, torch, transformers, pytest"
	@echo "$(VENV) is ready"
	@touch $(STAMP)

train: $(STAMP)
	$(PY) train.py $(ARGS)

# The line after pytest's own summary ("N deselected") runs whether the tests passed or not.
test: $(STAMP)
	@$(PY) -m pytest -m "$(FAST_TIER)" $(PYTEST_ARGS); status=$$?; \
	echo "make test ran the fast tier only (-m \"$(FAST_TIER)\"); the deselected tests run with: make test-all"; \
	exit $$status

# PEFTLAB_SLURM_TESTS=1 lets tests/runs/test_slurm.py install and start a local Slurm cluster (root only; stopped at the end).
test-all: $(STAMP)
	PEFTLAB_SLURM_TESTS=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

clean-logs:
	rm -rf logs/*/ 
