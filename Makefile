# Two commands on a fresh machine (see README):
#   make demo   - create .venv, install graflow, run the in-process demo (no Redis needed)
#   make test   - create .venv, install the test extras, run ruff, mypy and the test suite
#                 (tests start a private redis-server when GRAFLOW_TEST_REDIS_URL is unset)
#   make test-rq2 - the pool suites (tests/worker, tests/distributed, tests/failover) on
#                 rq 2.12, in .venv-rq2 (graflow supports rq 2.12 and 3.x; see docs/rq.md)
#   make fuzz   - 5,000 random workflows run by both drivers (the suite runs 200)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The rq the venv gets: the newest allowed major by default (lint and the whole suite).
RQ ?= rq>=3,<4
VENV_RQ2 ?= .venv-rq2
RQ2 ?= rq==2.12.*

.PHONY: demo test lint pytest pool test-rq2 fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' '$(RQ)'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/quickstart.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check graflow tests benchmarks examples
	$(VENV)/bin/mypy graflow

pytest: $(VENV)/.installed
	$(PY) -m pytest -q

test: lint pytest

# The suites that drive rq (workers, the pool driver, failover), one pytest run each
# (tests/worker and tests/distributed cannot share one run).
pool: $(VENV)/.installed
	$(PY) -m pytest -q tests/worker
	$(PY) -m pytest -q tests/distributed
	$(PY) -m pytest -q tests/failover

test-rq2:
	$(MAKE) VENV=$(VENV_RQ2) RQ='$(RQ2)' pool

fuzz: $(VENV)/.installed
	GRAFLOW_FUZZ_GRAPHS=5000 $(PY) -m pytest -q -p no:cacheprovider tests/behaviour/test_differential.py

clean:
	rm -rf $(VENV) $(VENV_RQ2) .mypy_cache .ruff_cache .pytest_cache
