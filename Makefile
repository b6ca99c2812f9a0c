# One virtualenv in .venv holds everything; every target creates it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo serve-demo test test-all bench clean

setup: $(STAMP)

# torch is installed first and pinned: 2.13.0 is the CPU build this project's machines carry,
# and installing it before the project stops the resolver from fetching a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,piper]'
	touch $@

## The offline demo: builds an anchor from a synthetic actor (first run ~8 min on 2 idle cores, then cached: seconds), writes demo.mp4
demo: setup
	$(BIN)/newsanchor demo --out demo.mp4

## The newsroom service on this machine with the demo anchor (built first if needed): http://127.0.0.1:8000/
serve-demo: demo
	$(BIN)/newsanchor serve --anchors "$$($(BIN)/python -c 'from newsanchor.demo.build import demo_cache; print(demo_cache())')"

## Fast tests (a few minutes; no slow real-recording runs), after the linter and the type check
test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not slow" -q

## Every test, including slow ones on the recordings in ../shared/data (what CI runs)
test-all: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

## Speed benchmarks (print tables; see benchmarks/RESULTS.md)
bench: setup
	$(BIN)/python benchmarks/prepare.py
	$(BIN)/python benchmarks/mouth_inference.py
	$(BIN)/python benchmarks/renderer.py

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
