# Two commands set everything up: `make train` and `make test`.
# Both (re)build the project-local virtual environment .venv when it is missing or when
# pyproject.toml changed since it was built.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.peftlab-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: train test venv clean-logs

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

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean-logs:
	rm -rf logs/*/ 
