# pex-tuner developer commands. Every target creates .venv when missing and installs the project.
#   make demo   - set up (runtime dependencies only) and run the demo on the built-in experiment
#   make test   - set up and run the test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime

.PHONY: install demo test test-slow lint bench notebooks clean

# what the library and the demo need (no test or notebook tooling)
$(RUNTIME_STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of torch first: a bare `torch` requirement would pull several GB of CUDA wheels
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	@touch $(RUNTIME_STAMP)

# the runtime plus the dev extras (tests, lint, notebooks)
$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/pex-tuner demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check pex_tuner tests benchmarks
	$(BIN)/ruff format --check pex_tuner tests benchmarks

# re-run the notebooks on a small budget and save them with their outputs
notebooks: $(STAMP)
	$(BIN)/python notebooks/execute_notebooks.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ope.py --out benchmarks/results/ope.md
	$(BIN)/python benchmarks/ope_coverage.py --out benchmarks/results/coverage.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
