# Two commands on a fresh machine (see README):
#   make demo   - create .venv, install graflow, run the in-process demo (no Redis needed)
#   make test   - create .venv, install the test extras, run ruff, mypy and the test suite
#                 (tests start a private redis-server when GRAFLOW_TEST_REDIS_URL is unset)
#   make fuzz   - 5,000 random workflows run by both drivers (the suite runs 200)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint pytest fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/quickstart.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check graflow tests benchmarks examples
	$(VENV)/bin/mypy graflow

pytest: $(VENV)/.installed
	$(PY) -m pytest -q

test: lint pytest

fuzz: $(VENV)/.installed
	GRAFLOW_FUZZ_GRAPHS=5000 $(PY) -m pytest -q -p no:cacheprovider tests/behaviour/test_differential.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
