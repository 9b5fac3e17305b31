# The two commands a newcomer needs:  make lab  (open the lessons)  and  make test  (run every test).
# Each sets itself up: a virtual environment in .venv with requirements.txt and nin_lib (editable).
#   TORCH=auto|cpu|cuda|default   which torch wheels go into .venv (tools/torch_choice.py; auto by default)
#   LAB_ARGS="--no-browser --port 8899"   more JupyterLab arguments for make lab
#   SETUP=                        skip the set-up step and use the .venv (or VENV=...) that is there
#   make handout DIR=handout      student copies of the lessons (no answers, no exercise outputs); FORCE=1 overwrites
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= auto
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
SETUP  ?= setup
LAB_ARGS ?=
DIR    ?= handout
# JupyterLab refuses to run as root (Docker, cloud shells) unless told to.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)

# Colab's ipywidgets: the panel tests run a second time with it (installed beside .venv, not into it).
IPYWIDGETS7_VERSION := 7.7.1
IPYWIDGETS7 := build/ipywidgets7
IPYWIDGETS7_PACKAGES := ipywidgets==$(IPYWIDGETS7_VERSION) widgetsnbextension==3.6.10 \
                        jupyterlab_widgets==1.1.11 ipython_genutils==0.2.0
IPYWIDGETS7_PATH := $(IPYWIDGETS7)$${PYTHONPATH:+:$$PYTHONPATH}
PANEL_TESTS := tests/test_panel.py tests/test_lesson_tools_01_02.py tests/test_lesson_tools_03_04.py \
               tests/test_experiments.py
PANEL_SELECT := panel and not importing

.PHONY: lab test setup handout clean

$(BIN)/.installed: requirements.txt pyproject.toml
	torch_args="$$($(PYTHON) tools/torch_choice.py --torch '$(TORCH)' --index '$(TORCH_INDEX)')" && \
	$(PYTHON) -m venv $(VENV) && \
	$(BIN)/python -m pip install --upgrade pip >/dev/null && \
	$(BIN)/python -m pip install $$torch_args -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

setup: $(BIN)/.installed

$(IPYWIDGETS7)/.installed: | $(SETUP)
	rm -rf $(IPYWIDGETS7)
	$(BIN)/python -m pip install --quiet --no-deps --target $(IPYWIDGETS7) $(IPYWIDGETS7_PACKAGES)
	touch $@

lab: $(SETUP)
	$(strip $(BIN)/python -m jupyterlab $(ALLOW_ROOT) $(LAB_ARGS) notebooks)

handout: $(SETUP)
	$(BIN)/python -m nin_lib handout $(DIR) $(if $(FORCE),--force)

# NIN_FAST=1 shrinks data and epochs so every notebook runs in seconds on a CPU.
test: $(SETUP) $(IPYWIDGETS7)/.installed
	NIN_FAST=1 $(BIN)/python -m pytest tests --nbval-lax notebooks
	PYTHONPATH=$(IPYWIDGETS7_PATH) $(BIN)/python -c "import ipywidgets, sys; \
	sys.exit(None if ipywidgets.__version__ == '$(IPYWIDGETS7_VERSION)' else \
	f'ipywidgets {ipywidgets.__version__} was imported from {ipywidgets.__file__}, not $(IPYWIDGETS7_VERSION) from $(IPYWIDGETS7)')"
	NIN_FAST=1 PYTHONPATH=$(IPYWIDGETS7_PATH) $(BIN)/python -m pytest -W "ignore::DeprecationWarning:ipywidgets.widgets.widget" \
	$(PANEL_TESTS) -k "$(PANEL_SELECT)"

clean:
	rm -rf $(VENV) $(IPYWIDGETS7) screenshots runs
