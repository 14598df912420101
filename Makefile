# The two commands of the README: `make demo` and `make test` (ruff, mypy, the docs site,
# the tests); `make docs` builds the documentation site alone. Both create .venv when it
# is missing and install the package (with the dev extras) into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint typecheck docs format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m mixedglm.demo

# two test processes (pytest-xdist): the suite is mostly numba compilation, one family and
# rule at a time, so two processes halve its wall time on a 2-core machine; work stealing
# keeps both busy to the end (a few tests compile for close to a minute)
TEST_WORKERS ?= 2

test: $(STAMP) lint typecheck docs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# the documentation site (docs/ and the API reference from the docstrings) into site/;
# --strict turns every warning (a broken link, a bad docstring reference) into an error
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --quiet

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .mypy_cache
