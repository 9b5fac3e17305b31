# The two commands a newcomer needs:  make lab  (open the lessons)  and  make test  (run every test).
# Each sets itself up: a virtual environment in .venv with requirements.txt and nin_lib (editable).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: lab test setup clean

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

setup: $(BIN)/.installed

lab: setup
	$(BIN)/jupyter lab notebooks

# NIN_FAST=1 shrinks data and epochs so every notebook runs in seconds on a CPU.
test: setup
	NIN_FAST=1 $(BIN)/python -m pytest tests --nbval-lax notebooks

clean:
	rm -rf $(VENV) screenshots runs
