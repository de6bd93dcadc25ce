# notifier: `make demo` runs the product on embedded defaults, `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help install lock browser demo test unit lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create the virtualenv and install notifier with its dev tools (pinned: constraints.txt)

lock: ## Refresh constraints.txt: newest releases pyproject.toml allows, in a scratch virtualenv
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .venv-lock
	@echo "constraints.txt refreshed: run 'make test' before committing it"

browser: ## Debian's Chromium for the console's browser tests (Playwright drives it; no download)
	command -v chromium >/dev/null || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)

demo: install ## Embedded broker + SQLite + SMTP capture; publish samples; show what was sent
	$(BIN)/notifier demo

test: install browser lint ## Linters, type checks, unit and integration tests (real broker, SMTP, databases)
	$(BIN)/pytest -q

unit: install ## Only the fast tests that need no broker
	$(BIN)/pytest -q -m "not integration"

lint: install ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Apply ruff's formatting and fixable lints
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## The benchmarks (README, "Performance"): pipeline, timers, delivery, race, storm, console
	command -v prometheus-alertmanager >/dev/null || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager)
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/timers.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/vs_alertmanager.py
	$(BIN)/python bench/storm.py
	$(BIN)/python bench/console.py

clean: ## Remove the virtualenv and local state
	rm -rf $(VENV) .venv-lock var .pytest_cache .mypy_cache .ruff_cache
