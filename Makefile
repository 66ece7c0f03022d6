# Entry points, each sets everything up first: `make demo`, `make test` and `make lint`. The demo installs
# only sqrtdk and what it runs on; the tests and gates add the test and lint tools.
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

.PHONY: demo test check lint
demo: $(BIN)/sqrtdk
	$(BIN)/sqrtdk variance --dim 64

test: $(VENV)/dev-tools
	$(BIN)/python -m pytest -q

check: $(BIN)/sqrtdk
	$(BIN)/sqrtdk check

lint: $(VENV)/dev-tools
	$(BIN)/ruff check sqrtdk tests experiments benchmarks
	$(BIN)/ruff format --check sqrtdk tests experiments benchmarks
	$(BIN)/mypy
