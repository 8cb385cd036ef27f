# Two commands matter: `make run` (the line on its embedded default) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8080
DESK_PORT ?= 8081
# The demo line answers around the clock, so it can be tried at any hour, unless IVR_OPENING_HOURS
# is set (in the environment or .env; see README); `ivr serve` alone keeps the default office hours.
DEMO_HOURS := {"weekly":{"mon":"00:00-24:00","tue":"00:00-24:00","wed":"00:00-24:00","thu":"00:00-24:00","fri":"00:00-24:00","sat":"00:00-24:00","sun":"00:00-24:00"},"holiday_regions":[]}

# The line's public URL (what Twilio and `ivr call` reach, and sign): IVR_PUBLIC_BASE_URL when set
# in the environment or .env, else derived from HOST and PORT (a wildcard HOST on loopback).
LOCAL_HOST := $(if $(filter 0.0.0.0,$(HOST)),127.0.0.1,$(if $(filter ::,$(HOST)),[::1],$(HOST)))
# Whether .env sets a variable, spelt as the line reads it (any case, spaces around `=`).
IN_ENV_FILE = $(shell grep -s -i -E '^[[:space:]]*(export[[:space:]]+)?$(1)[[:space:]]*=' .env)
DERIVED_URL := $(if $(or $(IVR_PUBLIC_BASE_URL),$(call IN_ENV_FILE,IVR_PUBLIC_BASE_URL)),,IVR_PUBLIC_BASE_URL='http://$(LOCAL_HOST):$(PORT)')
HOURS := $(if $(or $(IVR_OPENING_HOURS),$(call IN_ENV_FILE,IVR_OPENING_HOURS)),,IVR_OPENING_HOURS='$(DEMO_HOURS)')

.PHONY: install install-dev run test test-ahead lint bench clean test-slow mutants mutants-again

# `install`: what the line needs to run (with the PostgreSQL driver, for IVR_DATABASE_URL).
# `install-dev`: that, plus linters, type checker and test tools, for `make test` and `make lint`.
install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[postgres]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $@

# The line, and the agents' desk beside it on loopback: when either stops (or cannot start),
# both stop, with the status of the first.
run: install
	@$(BIN)/ivr desk --host 127.0.0.1 --port $(DESK_PORT) & desk=$$!; \
	$(HOURS) $(DERIVED_URL) $(BIN)/ivr serve --host $(HOST) --port $(PORT) & line=$$!; \
	trap 'kill $$desk $$line 2>/dev/null' EXIT INT TERM; \
	echo "The agents' desk: http://127.0.0.1:$(DESK_PORT)/sign-in (add an agent: .venv/bin/ivr agents add NAME --role supervisor)"; \
	wait -n; status=$$?; kill $$desk $$line 2>/dev/null; wait; exit $$status

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests run in TEST_WORKERS processes (pytest-xdist; each has its own throwaway PostgreSQL).
TEST_WORKERS ?= 2
test: lint
	$(BIN)/ivr flows check
	$(BIN)/pytest -n $(TEST_WORKERS)

# The whole suite (the slow tests too) with the wall clock CLOCK_AHEAD_DAYS days ahead in every Python process it starts
# (tests/clock_ahead/sitecustomize.py, time-machine): a test that mixes the fixed test clock with the
# wall clock fails here today rather than on every clone from some later day. CI runs it after `make test`.
CLOCK_AHEAD_DAYS ?= 400
test-ahead: install-dev
	CLOCK_AHEAD_DAYS=$(CLOCK_AHEAD_DAYS) PYTHONPATH=$(CURDIR)/tests/clock_ahead $(BIN)/pytest -n $(TEST_WORKERS) \
		-m "slow or not slow" -p no:time_machine -W ignore::pytest.PytestAssertRewriteWarning

# Statistics over a thousand calls and the like: CI runs them after `make test`.
test-slow: install-dev
	$(BIN)/pytest -m slow

# `mutants`: mutation testing of the security-critical modules ([tool.mutmut] in pyproject.toml),
# from scratch, then the killed share per module (the README's table). Slow (an hour or more on
# 2 cores), so neither in `make test` nor in CI. `mutants-again`, after tests were added: reruns
# the mutants the last run did not kill, then those of changed functions (mutmut keeps the other
# verdicts), with fresh copies of what mutmut does not mutate; after a larger change, `make mutants`.
MUTANT_JOBS ?= 2
mutants: install-dev
	rm -rf mutants
	$(BIN)/mutmut run --max-children $(MUTANT_JOBS)
	$(BIN)/python bench/mutation_report.py

mutants-again: install-dev
	$(BIN)/python bench/mutation_report.py --rerun > mutants/rerun.txt
	$(BIN)/python bench/mutation_report.py --refresh-copies
	test ! -s mutants/rerun.txt || $(BIN)/mutmut run --max-children $(MUTANT_JOBS) $$(cat mutants/rerun.txt)
	$(BIN)/mutmut run --max-children $(MUTANT_JOBS)
	$(BIN)/python bench/mutation_report.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache mutants
