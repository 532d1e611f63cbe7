# SMX gateway - the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean simulate

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/smx-gateway run $(ARGS)

simulate: $(STAMP)
	$(BIN)/smx-gateway simulate --listen 127.0.0.1:4059 $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench tools
	$(BIN)/ruff format --check gateway tests bench tools
	$(BIN)/mypy --strict gateway

# Unit tests, then the integration tests in two processes (they wait on real time, not
# the CPU; tools/parallel_tests.py). A subset: .venv/bin/pytest tests/unit/test_obis.py
test: lint
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit
	$(BIN)/python tools/parallel_tests.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
