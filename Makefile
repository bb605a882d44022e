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

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing peftlab and its dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
	@$(PY) -c "import peftlab, lightning, hydra, torch, transformers, pytest" 
	@touch $(STAMP)

train: $(STAMP)
	$(PY) train.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

clean-logs:
	rm -rf logs/*/ 
