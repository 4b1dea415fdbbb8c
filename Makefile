# The two commands of the README: `make run` (set up, run the demo) and `make test`
# (set up, run every check). Both need only Python 3.11+ and pip: uv is installed
# with pip when missing, and `uv sync --frozen` installs exactly what uv.lock says.
PYTHON ?= python3
UV := $(PYTHON) -m uv

.PHONY: setup run test lint typecheck unit bench clean

setup:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.5"
	$(UV) sync --frozen

run: setup
	$(UV) run slokit demo

lint: setup
	$(UV) run ruff check src tests bench
	$(UV) run ruff format --check src tests bench

typecheck: setup
	$(UV) run mypy

unit: setup
	$(UV) run pytest

test: lint typecheck unit

bench: setup
	$(UV) run python bench/run_all.py

clean:
	rm -rf .venv slokit-demo.duckdb slokit-demo.duckdb.segments slokit-demo.yaml .pytest_cache .mypy_cache .ruff_cache
