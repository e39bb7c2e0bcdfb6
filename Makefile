# prolong-data: every command a researcher needs. `make shards` and `make test` work on a fresh
# clone: the first run creates .venv from pyproject.toml (about 5 minutes), later runs reuse it
# until pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPUS ?= $(abspath ../shared/corpus)
PYTEST := $(BIN)/python -m pytest

.PHONY: venv test test-slow test-all shards bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	@touch $(STAMP)

## Fast tests (a few minutes on 2 cores).
test: $(STAMP)
	PROLONG_CORPUS=$(CORPUS) $(PYTEST) -q -m "not slow and not gpu"

## End-to-end runs of the real commands on the sample corpus (CI runs these too).
test-slow: $(STAMP)
	PROLONG_CORPUS=$(CORPUS) $(PYTEST) -q -m "slow and not gpu"

test-all: test test-slow

## Benchmarks: results tables land in bench/results/*.md (see README, "Benchmarks").
bench: $(STAMP)
	$(BIN)/python bench/tokenize_throughput.py --corpus $(CORPUS) --out bench/results/tokenize_throughput.md

lint: $(STAMP)
	$(BIN)/ruff check prolong_data pipelines trainer tests bench
	$(BIN)/ruff format --check prolong_data pipelines trainer tests bench

clean:
	rm -rf data/shards runs bench/work
