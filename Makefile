# keytrail — `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
LAKE ?= keytrail-lake
PORT ?= 8501

.PHONY: help demo test check lint types format bench clean

help: ## Show this help message
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

# The runtime alone for the demo; the dev tools (tests, linters, browser driver) on top for everything else.
$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/.runtime ## Ingest the sample logs and open the dashboard
	$(VENV)/bin/keytrail demo --lake $(LAKE) --port $(PORT)

test: $(VENV)/.installed ## Run the test suite
	$(PY) -m pytest -n 2 --dist loadgroup -q  # loadgroup: the Spark tests (xdist_group "spark") share one JVM

lint: $(VENV)/.installed ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(VENV)/.installed ## mypy
	$(VENV)/bin/mypy ingest analytics dashboard keytrail

format: $(VENV)/.installed ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: lint types test ## Everything CI runs

bench: $(VENV)/.installed ## Run the benchmarks (slow)
	$(PY) bench/ingest.py

clean: ## Remove the venv and the demo lake
	rm -rf $(VENV) $(LAKE)
