# Two commands do all the set-up on a fresh machine with Python 3.11+ and make:
#   make run    create .venv if missing, install, solve the bundled benchmark into out/
#   make test   same set-up (and, as root, the system tools of the document tests), run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install system-deps bench wheel-check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/margin-design solve examples/benchmark.toml --out out/benchmark

# pdflatex, poppler and headless Chromium for tests/test_documents.py: installed (apt) only when missing and root.
system-deps:
	bash .ci/system_deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest -q -n 2 tests

bench: $(STAMP)
	$(PY) benchmarks/bench_solvers.py

# Build the wheel, install it (non-editable) into a throw-away venv and solve the benchmark with it.
wheel-check: $(STAMP)
	bash .ci/wheel_check.sh

clean:
	rm -rf $(VENV) out build *.egg-info
