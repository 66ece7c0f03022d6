# Entry points, each sets everything up first: `make demo`, `make test` and `make lint`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/sqrtdk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: demo test check lint
demo: $(BIN)/sqrtdk
	$(BIN)/sqrtdk variance --dim 64

test: $(BIN)/sqrtdk
	$(BIN)/python -m pytest -q

check: $(BIN)/sqrtdk
	$(BIN)/sqrtdk check

lint: $(BIN)/sqrtdk
	$(BIN)/ruff check sqrtdk tests experiments benchmarks
	$(BIN)/ruff format --check sqrtdk tests experiments benchmarks
	$(BIN)/mypy
