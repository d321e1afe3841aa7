# The two quick-start commands (README.md): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test docs bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[examples]"
	touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev,examples]"
	touch $@

## demo: install mlzen and run the quick-start pipeline on the embedded defaults
demo: $(VENV)/.demo-installed
	cd examples/quickstart && ../../$(BIN)/python pipeline.py

## test: install the dev tools and run lint, layer contracts, the docs build and the whole
## test suite (which runs every example of README.md and docs/)
test: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks examples docs/hooks
	$(BIN)/lint-imports
	$(MAKE) docs
	$(BIN)/pytest -q

## docs: build the documentation site into site/; any warning (a broken link, a
## docstring mkdocstrings cannot read) fails the build
docs: $(VENV)/.dev-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## bench: print every benchmark figure next to its target
bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/run.py

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests benchmarks examples docs/hooks
	$(BIN)/ruff format --check src tests benchmarks examples docs/hooks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) site examples/quickstart/.mlzen
