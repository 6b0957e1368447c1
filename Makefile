# The two commands of the README: `make demo` and `make test`. Both create the environment when missing.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test lint format demo bench extension clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

test: $(VENV)/.installed lint
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

demo: $(VENV)/.installed
	$(PY) -m geo4d demo -o demo_output

extension: $(VENV)/.installed
	$(PY) build.py

clean:
	rm -rf $(VENV) build dist demo_output
