# Two entry points, each sets everything up first: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/sqrtdk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: demo test check
demo: $(BIN)/sqrtdk
	$(BIN)/sqrtdk variance --dim 64

test: $(BIN)/sqrtdk
	$(BIN)/python -m pytest -q

check: $(BIN)/sqrtdk
	$(BIN)/sqrtdk check
