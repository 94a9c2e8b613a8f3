# Two set-up commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# torch is pinned here (the package itself asks for a range): 2.13.0 is the CPU wheel
# this project's machines carry; an unpinned torch pulls a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: install install-pythia demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# pythia8mc 8.317.2 ships a cp311 binary wheel; newer releases may build from source for long.
install-pythia: $(STAMP)
	$(PY) -m pip install --quiet pythia8mc==8.317.2

demo: $(STAMP)
	$(PY) -m dyfit demo -o demo-output

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

bench: $(STAMP) install-pythia
	$(PY) benchmarks/bench_simulation.py
	$(PY) benchmarks/bench_training.py --threads 1

clean:
	rm -rf $(VENV) demo-output
