# UPR Tracker: the two commands a newcomer needs are `make dev` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools

dev: $(STAMP) ## Start NATS and the services on embedded defaults (SQLite under ./data)
	$(BIN)/upr dev

test: $(STAMP) ## Lint, then run every test against real PostgreSQL and NATS
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium fonts-khmeros) || echo "chromium could not be installed: the browser tests will be skipped"
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Run the benchmarks; results in bench/results/latest.json
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
