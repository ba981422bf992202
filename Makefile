# `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint coverage bench clean sqs-table

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/wonderq up

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy

# Two workers: the suite is CPU-bound on a 2-core machine. The system tests (the longest)
# are collected first and idle workers steal what is left, so neither waits on the other.
test: lint
	$(BIN)/pytest -n 2 --dist worksteal tests/system tests

# Line and branch coverage of the suites that run WonderQ's code in this process
# (the system tests run it in subprocesses); fails below the floor.
COVERAGE_FLOOR := 78
coverage: $(VENV)/.installed
	$(BIN)/pytest -n 2 --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) \
		tests/backends tests/broker tests/edge tests/client tests/cli tests/apps

# docs/sqs.md's compatibility table, from what tests/broker/sqs did (tools/sqs_table.py).
sqs-table: $(VENV)/.installed
	$(BIN)/python tools/sqs_table.py

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
