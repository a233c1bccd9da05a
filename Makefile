# One task runner; CI (.ci/run) uses the same targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint format bench system clean help

help:
	@echo "make run    - install and serve on http://localhost:8000 (SQLite, no other service)"
	@echo "make test   - install what the tests need and run the whole suite (SQLite + PostgreSQL + NATS)"
	@echo "make lint   - ruff, mypy, import-linter"
	@echo "make bench  - benchmarks, figures go to docs/benchmarks.md"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml setup.py src/vnehr/submissions/_fast.pyx | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py src/vnehr/submissions/_fast.pyx | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/vnehr db upgrade
	$(BIN)/vnehr demo load --if-empty
	$(BIN)/vnehr serve

system:
	scripts/setup-system.sh
	scripts/fetch-npm-tools.sh

test: system $(VENV)/.installed-dev
	$(BIN)/pytest -n 2  # two processes: the suite is CPU-bound in one (44 min alone, about 25 with two)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: system $(VENV)/.installed-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var .tmp
