# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make run    create .venv if missing, install, solve the bundled benchmark into out/
#   make test   same set-up, run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install bench wheel-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/margin-design solve examples/benchmark.toml --out out/benchmark

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

bench: $(STAMP)
	$(PY) benchmarks/bench_solvers.py

# Build the wheel, install it (non-editable) into a throw-away venv and solve the benchmark with it.
wheel-check: $(STAMP)
	bash .ci/wheel_check.sh

clean:
	rm -rf $(VENV) out build *.egg-info
