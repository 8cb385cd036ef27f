# Two commands matter: `make run` (the line on its embedded default) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8080
# The demo line answers around the clock, so it can be tried at any hour. Production hours
# come from IVR_OPENING_HOURS (see README); without it the line keeps the default office hours.
DEMO_HOURS := {"weekly":{"mon":"00:00-23:59","tue":"00:00-23:59","wed":"00:00-23:59","thu":"00:00-23:59","fri":"00:00-23:59","sat":"00:00-23:59","sun":"00:00-23:59"},"holiday_regions":[]}

.PHONY: install run test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,postgres]'
	touch $@

run: install
	IVR_OPENING_HOURS='$(or $(IVR_OPENING_HOURS),$(DEMO_HOURS))' $(BIN)/ivr serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/ivr flows check
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
