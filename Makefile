# The two commands a new machine needs: `make run` and `make test` (both install first).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test test-unit test-gpu lint bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

run: install
	$(VENV)/bin/capas up

test: install
	$(PY) -m pytest -q -rs

# On a host with an NVIDIA GPU: CUDA training, checkpoints and the CUDA worker of `capas up`
# (whose jobs may each take up to 10 minutes: a longer timeout than the default).
test-gpu: install
	$(PY) -m pytest -q -rs --timeout 1800 tests/gpu

test-unit: install
	$(PY) -m pytest -q -rs tests/unit

# ruff on the whole tree; mypy, strict, on the ML library and the shared domain (pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy ml core

bench: install
	$(PY) bench/train_overhead.py
	$(PY) bench/artifact_store.py
