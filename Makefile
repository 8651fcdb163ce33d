# `make run` starts the sidecar watching the demo shop; `make test` runs the whole suite.
# Both create the virtual environment in .venv on first use: `make run` installs what the kit
# needs to run (about 30 packages, 85 MB), `make test` adds the test and benchmark tools.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean render

$(BIN)/.runtime: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "exporter: installing the kit's runtime dependencies into $(VENV) (one time, about a minute)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e .
	touch $@

$(BIN)/.installed: $(BIN)/.runtime
	@echo "exporter: installing the test and benchmark tools into $(VENV) (one time)"
	$(BIN)/python -m pip install --progress-bar on -e '.[test,bench]'
	touch $@

run: $(BIN)/.runtime
	$(BIN)/exporter serve --demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest

# Rules, promtool tests, dashboards and docs/signals.md from thresholds.yaml (docs/stack.md).
render: $(BIN)/.runtime
	$(BIN)/exporter render

lint: $(BIN)/.installed
	$(BIN)/ruff check exporter tests bench
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python bench/http_overhead.py
	$(BIN)/python bench/scrape.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
