# vadlab: `make demo` and `make test` set up .venv on first use, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
DEMO_DATA := data/synthetic-default
DEMO_OUT  := reports
DEMO_RUNS := runs/demo
PRESET    ?= cpu

.PHONY: venv demo test test-fast lint bench notebooks strip docs docs-serve clean

venv: $(STAMP)

# torch first (a pinned CPU build; a bare `torch` would pull a multi-GB CUDA build), then the package.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vadlab demo --data $(DEMO_DATA) --out $(DEMO_OUT) --runs $(DEMO_RUNS) --preset $(PRESET)

test: lint
	$(PY) -m pytest -n 2 --durations=15 tests

test-fast: lint
	$(PY) -m pytest -n 2 -m "not slow" tests

# ruff (configured in pyproject.toml): the package, tests, tools, benchmarks and the notebook sources
lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/bench_memory.py

# notebooks/*.ipynb are generated from notebooks/src/*.py (jupytext's percent format) without outputs; --update
# keeps the committed notebook's cell ids, nbconvert clears any output a notebook run in place left
notebooks: $(STAMP)
	for src in notebooks/src/*.py; do \
	  $(VENV)/bin/jupytext --quiet --update --to ipynb --output notebooks/$$(basename $$src .py).ipynb $$src \
	  || exit 1; \
	done
	$(VENV)/bin/jupyter nbconvert --log-level=WARN --clear-output --inplace notebooks/*.ipynb

strip: notebooks

# the docs site (docs/, mkdocs.yml) into site/; docs-serve rebuilds on every change
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

clean:
	rm -rf $(VENV) .pytest_cache site
