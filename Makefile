# The two commands a newcomer needs: `make report` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.abkit-installed
RUN    ?= default

.PHONY: setup report smoke lint fmt test bench lab clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,spark]"
	$(PY) -m ipykernel install --sys-prefix --name abkit --display-name abkit
	touch $(STAMP)

report: setup
	$(VENV)/bin/abkit run --params params/default.yaml --run-name $(RUN)

smoke: setup
	$(VENV)/bin/abkit run --params params/smoke.yaml --run-name smoke

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup lint
	$(PY) -m pytest -n 2  # two workers: the suite starts many kernels and Spark sessions

bench: setup
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/run_all.py

lab: setup
	$(VENV)/bin/jupyter lab --allow-root --no-browser --IdentityProvider.token= --ServerApp.root_dir=.

clean:
	rm -rf outputs/*/ outputs/index.html .pytest_cache
