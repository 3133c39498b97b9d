# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-unit lint bench bench-state bench-latency clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/riskstream demo

# Two processes, each test file in one (its broker and fixtures stay together).
test: setup lint
	$(BIN)/python -m pytest -n 2 --dist loadfile

test-unit: setup
	$(BIN)/python -m pytest tests/unit pipeline

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/worker_throughput.py

bench-state: setup
	$(BIN)/python benchmarks/state_benchmark.py

bench-latency: setup
	$(BIN)/python benchmarks/latency.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
