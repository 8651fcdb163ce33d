# `make run` starts the sidecar with demo traffic; `make test` runs the whole suite.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean render

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/exporter serve --demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest

# Rules, promtool tests and dashboards from thresholds.yaml (docs/stack.md).
render: $(BIN)/.installed
	$(BIN)/exporter render

lint: $(BIN)/.installed
	$(BIN)/ruff check exporter tests bench
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python bench/http_overhead.py
	$(BIN)/python bench/scrape.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
