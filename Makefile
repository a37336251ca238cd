# `make demo` and `make test` do all the set-up on a fresh clone: they create .venv and install.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# torch and torchvision first, pinned to the builds this project is tested with
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel
	$(PIP) install $(TORCH)
	$(PIP) install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	MLFLOW_DISABLE_TELEMETRY=true $(VENV)/bin/leakguard demo
	@if [ -f examples/lightning_digits.py ]; then MLFLOW_DISABLE_TELEMETRY=true $(PY) examples/lightning_digits.py; fi

test: install
	MLFLOW_DISABLE_TELEMETRY=true $(PY) -m pytest -ra tests

bench: install
	$(PIP) install -e ".[dev,bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache demo-output leakguard-reports
