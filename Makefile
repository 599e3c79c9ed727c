# The README's commands. `make run` and `make test` work from a fresh clone with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Reinstall only when a requirements file changed.
STAMP := $(VENV)/.installed
SOURCES := manage.py lesionsite classifier worker training bench

.PHONY: run test lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py create_demo_users
	DEBUG=1 $(PY) manage.py runlocal

# Two pytest processes (pytest-xdist), each test file whole in one of them so its module fixtures
# are built once; many tests spend their time waiting on a Celery worker, a browser or a server,
# which the other process fills. TEST_PROCESSES=0 runs them all in this one.
TEST_PROCESSES ?= 2

test: lint
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile

# bandit at medium severity and up: the low ones are the subprocess calls that start local services.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m bandit --quiet --severity-level medium --recursive $(SOURCES)
	$(PY) .ci/audit_dependencies.py

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Benchmarks: the model in-process and the whole stack end to end, both backends (docs/PERFORMANCE.md).
# Needs the local Redis and PostgreSQL; writes bench/results/latest.json.
bench: $(STAMP)
	$(PY) -m bench.run

clean:
	rm -rf var/ .pytest_cache .ruff_cache
