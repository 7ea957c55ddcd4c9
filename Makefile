# One command each: `make demo` runs the 12-LA demo trial end to end; `make test` runs every check.
# Both create the virtual environment themselves from the lock file (uv.lock).

SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
PACKAGES := ingest schemas pseudonymise synthetic benchmarks

.PHONY: demo test lint typecheck pytest ui run dictionary benchmark clean

demo: $(VENV)/.synced
	$(VENV)/bin/trial-ingest demo

test: lint typecheck pytest

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy

pytest: $(VENV)/.synced
	$(VENV)/bin/pytest

ui: $(VENV)/.synced
	$(VENV)/bin/trial-ingest ui

run: $(VENV)/.synced
	$(VENV)/bin/trial-ingest run

benchmark: $(VENV)/.synced
	$(VENV)/bin/python -m benchmarks.run --plot docs/performance-scaling.png

dictionary: $(VENV)/.synced
	$(VENV)/bin/trial-ingest dictionary --out docs/DATA_DICTIONARY.md

$(UV):
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode is compiled once here: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
# start would otherwise compile Dagster, polars and pandas afresh, about 5 s (docs/PERFORMANCE.md).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python 3.11 --compile-bytecode
	$(VENV)/bin/python -m compileall -q $(PACKAGES)
	touch $@

clean:
	rm -rf $(VENV) .tools var .mypy_cache .ruff_cache .pytest_cache
