# SMX gateway - the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean simulate fleet dist

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/smx-gateway run $(ARGS)

# A local fleet: mosquitto, three simulated gateways and the head-end (tools/fleet.py); Ctrl-C stops it.
fleet: $(STAMP)
	$(BIN)/python -m tools.fleet $(ARGS)

simulate: $(STAMP)
	$(BIN)/smx-gateway simulate --listen 127.0.0.1:4059 $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gateway headend tests bench tools
	$(BIN)/ruff format --check gateway headend tests bench tools
	$(BIN)/mypy --strict gateway headend

# The test files shared out to pytest-xdist workers, one per core, each file whole in one
# worker (most integration tests wait on real time, not the CPU); then, alone, the files
# that load the CPU themselves
# (their own client processes, a virtual-time week, two head-ends aggregating 1,000 sites for 5
# minutes). A subset: .venv/bin/pytest tests/unit/test_obis.py
ALONE := tests/integration/test_load.py tests/integration/test_soak.py tests/headend/test_portfolio_load.py
test: lint
	$(BIN)/pytest -n auto --dist loadfile $(PYTEST_ARGS) $(addprefix --ignore=,$(ALONE)) tests
	$(BIN)/pytest $(PYTEST_ARGS) $(ALONE)

# The wheel and the sdist (smx-gateway and smx-headend) in dist/: `pip install
# dist/smx_gateway-*.whl -c deploy/constraints.txt` gives a box the pinned dependencies.
dist: $(STAMP)
	rm -rf dist build
	$(BIN)/pip install --quiet "setuptools>=77"
	$(BIN)/python -c "from setuptools import build_meta as b; b.build_sdist('dist'); b.build_wheel('dist')"
	rm -rf build

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
