# vadlab: `make demo` and `make test` set up .venv on first use, then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
DEMO_DATA := data/synthetic-default
DEMO_OUT  := reports/demo

.PHONY: venv demo test test-fast bench strip clean

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
	$(VENV)/bin/vadlab demo --data $(DEMO_DATA) --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -m "not slow" tests

bench: $(STAMP)
	$(PY) benchmarks/bench_memory.py

strip: $(STAMP)
	$(PY) tools/strip_notebooks.py

clean:
	rm -rf $(VENV) .pytest_cache
