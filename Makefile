# Entry points, each sets everything up first: `make demo`, `make test`, `make test-fast` and `make lint`.
# The demo installs only sqrtdk and what it runs on; the tests and gates add the test and lint tools. The
# tests run on every core (pytest-xdist, a worker that runs out of tests takes some of the other's); test-fast
# leaves out the tests marked slow.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/sqrtdk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/dev-tools: $(BIN)/sqrtdk
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: demo test test-fast check lint
demo: $(BIN)/sqrtdk
	$(BIN)/sqrtdk variance --dim 64

test: $(VENV)/dev-tools
	$(BIN)/python -m pytest -q -n auto --dist worksteal

test-fast: $(VENV)/dev-tools
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow"

check: $(BIN)/sqrtdk
	$(BIN)/sqrtdk check

lint: $(VENV)/dev-tools
	$(BIN)/ruff check sqrtdk tests experiments benchmarks
	$(BIN)/ruff format --check sqrtdk tests experiments benchmarks
	$(BIN)/mypy
