# Two commands set everything up on a fresh machine with Python >= 3.10:
#   make demo   # create .venv, install imgunlearn, run the embedded end-to-end demo into runs/demo/
#   make test   # create .venv, install imgunlearn with its test tools, run the default test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/imgunlearn demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check imgunlearn tests scripts

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache
