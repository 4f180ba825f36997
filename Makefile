# Two commands do everything, each setting up .venv first:
#   make book   build the HTML book, every lesson executed, into _build/html
#   make test   run the unit tests and every lesson cell by cell (nbval)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test test-swap unit lint gpu-test gpu-check browser-test lab clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests --nbval lessons

test-swap: $(STAMP)   # every lesson again, the course's model swapped for another preset
	COURSE_PRESET=shakespeare-char-mini $(BIN)/python -m pytest --nbval lessons

unit: $(STAMP)
	$(BIN)/python -m pytest tests

lint: $(STAMP)   # unused and undefined names, syntax errors (pyproject.toml's [tool.ruff])
	$(BIN)/ruff check lib tests benchmarks book conftest.py

book: $(STAMP)
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo
	@echo "The book is built. Open it in a browser: file://$(CURDIR)/_build/html/index.html"

gpu-test: $(STAMP)   # on a CUDA machine: the unit tests, those marked gpu included, and every lesson on CUDA
	@$(BIN)/python -c "import sys, torch; torch.cuda.is_available() or sys.exit('make gpu-test: PyTorch sees no CUDA GPU. Install the CUDA build of torch into .venv (see README, On a GPU).')"
	$(BIN)/python -c "import torch; print('GPU:', torch.cuda.get_device_name(), '| torch', torch.__version__)"
	COURSE_REQUIRE_GPU=1 $(BIN)/python -m pytest tests --nbval lessons --durations=20

gpu-check: $(STAMP)   # on a CUDA machine, under 10 minutes: gpu tests, the course's run and each lesson timed
	$(BIN)/python benchmarks/gpu_check.py --out benchmarks/gpu-check.json

AXE := node_modules/axe-core/axe.min.js

$(AXE): package.json   # axe-core, for the accessibility check of every page (npm's registry)
	npm install --no-audit --no-fund
	@touch $(AXE)

browser-test: $(STAMP) $(AXE)   # after `make book`: every page in headless Chromium, axe-core on each
	$(BIN)/python -m pytest -m browser tests

lab: $(STAMP)   # JupyterLab with the project's settings: a lesson (.md) opens as a notebook
	$(BIN)/jupyter lab --LabApp.app_settings_dir=$(CURDIR)/binder/lab-settings lessons

clean:
	rm -rf _build .pytest_cache
