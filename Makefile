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
# worker (most integration tests wait on real time, not the CPU), in collection order
# (--no-loadscope-reorder: xdist would otherwise start the files with the most tests first,
# leaving the few long ones - an end-to-end file, the 20 kills - to the end, one worker
# running them while the other is idle; in collection order the many short unit files come
# last and even the workers out); then, alone, the files whose timing claims need the CPU
# to themselves (50 OPC UA sessions in their own processes, two head-ends aggregating 1,000
# sites for 5 minutes). The virtual-time week (test_soak.py) is not among them: its clock
# stands still while it waits for the CPU. A subset: .venv/bin/pytest tests/unit/test_obis.py
ALONE := tests/integration/test_load.py tests/headend/test_portfolio_load.py
test: lint
	$(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS) $(addprefix --ignore=,$(ALONE)) tests
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
