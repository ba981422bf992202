# `make run` and `make test` set everything up on a fresh machine.
# Two virtual environments: .venv-run holds what the server needs (a plain install of this
# checkout, reinstalled when a source file changes); .venv the dev toolchain, editable.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_VENV := .venv-run
RUN_BIN := $(RUN_VENV)/bin
SOURCES := pyproject.toml setup.py $(shell find src -type f -not -name '*.pyc' -not -path '*.egg-info*')

.PHONY: run test lint clients coverage package bench bench-sqs clean sqs-table

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The editable install compiles the C extension in place: again when its source changes.
$(VENV)/.installed: pyproject.toml setup.py $(wildcard src/wonderq/*/*/*.c) | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The real SQS clients of tests/clients, each where it cannot disturb the others: boto3, moto
# and Celery come with the dev extras; a Query-protocol botocore and the AWS CLI get venvs of
# their own (each pins a botocore), the Node SDK and sqs-consumer their node_modules.
NODE_DIR := tests/clients/node
CLIENTS := .venv-query/.installed .venv-awscli/.installed $(NODE_DIR)/node_modules/.installed

.venv-%/.installed: tests/clients/requirements-%.txt
	test -x .venv-$*/bin/python || $(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install -q -r $<
	touch $@

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

clients: $(VENV)/.installed $(CLIENTS)

$(RUN_BIN)/python:
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_BIN)/pip install -q --upgrade pip

$(RUN_VENV)/.installed: $(SOURCES) | $(RUN_BIN)/python
	$(RUN_BIN)/pip install -q --force-reinstall --no-deps . && $(RUN_BIN)/pip install -q '.[postgres]'
	rm -rf build
	touch $@

run: $(RUN_VENV)/.installed
	$(RUN_BIN)/wonderq up

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests bench tools
	$(BIN)/mypy

# Two workers: the suite is CPU-bound on a 2-core machine. The system tests (the longest)
# are collected first and idle workers steal what is left, so neither waits on the other.
test: lint clients
	$(BIN)/pytest -n 2 --dist worksteal tests/system tests

# Line and branch coverage of the suites that run WonderQ's code in this process
# (the system tests run it in subprocesses); fails below the floor.
COVERAGE_FLOOR := 78
coverage: $(VENV)/.installed
	$(BIN)/pytest -n 2 --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) \
		tests/backends tests/broker tests/edge tests/client tests/cli tests/apps

# Build the wheel and the sdist (the wheel from the sdist, so the sdist is known complete),
# install the wheel alone into a fresh venv and smoke-test it there (deploy/smoke.sh).
package: $(VENV)/.installed
	rm -rf dist .venv-smoke
	$(BIN)/python -m build --outdir dist .
	$(PYTHON) -m venv .venv-smoke
	.venv-smoke/bin/pip install -q dist/wonderq-*.whl
	deploy/smoke.sh .venv-smoke/bin
	rm -rf .venv-smoke

# docs/sqs.md's compatibility table, from what tests/broker/sqs did (tools/sqs_table.py).
sqs-table: $(VENV)/.installed
	$(BIN)/python tools/sqs_table.py

bench: $(VENV)/.installed
	$(BIN)/python bench/bench.py

# The SQS API against the REST API, with moto's server as the peer row (bench/README.md).
bench-sqs: $(VENV)/.installed
	$(BIN)/python bench/sqs_bench.py

clean:
	rm -rf $(VENV) $(RUN_VENV) .venv-smoke .venv-query .venv-awscli $(NODE_DIR)/node_modules dist build \
		.pytest_cache .mypy_cache .ruff_cache
