# vaesweep: `make demo` and `make test` set everything up on a fresh machine.
# Run `make help` for the list of targets.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# Extras installed by `make install`: the joblib and submitit launchers, and the dev tools.
EXTRAS ?= all
# Processes `make test` and `make test-fast` spread the test files over (pytest-xdist).
WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint format bench clean clean-outputs

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install vaesweep with its launchers and dev tools

demo: $(STAMP) ## A small beta sweep on the bundled digits, then its report
	$(BIN)/vaesweep sweep beta=0.01,0.1,1
	$(BIN)/vaesweep report

test: $(STAMP) ## Run the whole test suite, in WORKERS processes (default 2; WORKERS=0: in this one)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

test-fast: $(STAMP) ## Tests without the slow ones, in WORKERS processes (default 2; WORKERS=0: in this one)
	$(BIN)/python -m pytest -m "not slow" -n $(WORKERS) --dist load

lint: $(STAMP) ## ruff check, format check and mypy (config in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## Speed targets as ratios against baselines measured in the same run
	$(BIN)/python bench/bench_stack.py
	$(BIN)/python bench/bench_sweep.py
	$(BIN)/python bench/bench_sweep.py --data fashion --repeats 1
	$(BIN)/python bench/bench_report.py
	$(BIN)/python bench/bench_trackers.py
	$(BIN)/python bench/bench_colour.py throughput
	$(BIN)/python bench/bench_disentanglement.py
	$(BIN)/python bench/bench_gpu.py

clean: ## Remove caches and build files (keeps .venv and outputs/)
	rm -rf .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

clean-outputs: ## Remove every result under outputs/
	rm -rf outputs
