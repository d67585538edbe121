# The two commands of the README: `make demo` (install + main job) and `make test` (install + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# idle OpenMP threads sleep instead of spin (faster on a busy machine; see medrecon/threads.py)
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY

.PHONY: install install-dev install-notebook demo test bench notebook

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamps: a second `make demo` / `make test` skips pip until setup.cfg or pyproject.toml change.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-notebook: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e ".[notebook]"
	touch $@ $(VENV)/.installed

install-notebook: $(VENV)/.installed-notebook

demo: install
	$(BIN)/medrecon demo

test: install-dev
	$(BIN)/python -m pytest -q -m "not gpu" --timeout=600

bench: install
	$(BIN)/medrecon bench operators
	$(BIN)/medrecon bench ct

# Executes notebooks/01_fastmri_volume.ipynb (whole shipped sample, DDS 50 NFE) into medrecon-notebook/.
notebook: install-notebook
	mkdir -p medrecon-notebook
	$(BIN)/jupytext --to ipynb --output medrecon-notebook/01_fastmri_volume.ipynb notebooks/01_fastmri_volume.py
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace medrecon-notebook/01_fastmri_volume.ipynb
	@echo "executed notebook: medrecon-notebook/01_fastmri_volume.ipynb"
