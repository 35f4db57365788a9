# Ballot: two commands. `make run` serves the app with a demo project; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test check install lint format bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the CPU wheel on these machines' disk; a bare `torch` would pull a CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	PORT=$(PORT) bin/serve

# Three pytest-xdist workers, each with its own test database and Redis database; tests
# that share an expensive session fixture run on one of them (ONE_WORKER in
# tests/conftest.py). Three on two cores, because browser, live-server and Celery tests
# wait on other processes: 7 min 33 s against 8 min 49 s for two on a quiet two-core
# machine (5 min 16-22 s now, with four no faster). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 3

# The suite starts many Python processes (three workers, a Celery worker per integration
# test, subprocesses that check settings); with PYTHONDONTWRITEBYTECODE set in the
# environment each compiled the project's modules anew. Their bytecode goes to
# __pycache__ folders, which git ignores.
test check: export PYTHONDONTWRITEBYTECODE :=

test: install
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Ballot in its production shape (gunicorn, its own PostgreSQL and Redis, a Celery worker per
# queue), attacked, broken and loaded; prints every figure and fails unless nothing was lost.
# CHECK_ARGS="--only faults,deployment" runs some modules; see `python -m checks --help`.
check: install
	$(PY) -m checks $(CHECK_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# import-linter contracts in pyproject.toml; --no-cache keeps its cache folder out of the tree.
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
