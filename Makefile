# Two commands do everything on a fresh machine (Python 3.11, 2 CPU cores are enough):
#   make demo   set up .venv, render the embedded default data, write previews and a results table
#   make test   set up .venv, fetch the metric weights, run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3.11
# Some machines' pip configuration lists local index folders that do not exist; pip warns about each
# one for every package. Those lines carry no information, so they are filtered out of the logs.
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
DEMO_OUT ?= out/demo

.PHONY: setup demo test weights clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | $(QUIET_PIP)
	# torch first, pinned: pip finds the local CPU wheel; a range would pull CUDA builds. Never torchvision.
	$(BIN)/pip install -q "torch==2.13.0" 2>&1 | $(QUIET_PIP)
	$(BIN)/pip install -q -e ".[all]" 2>&1 | $(QUIET_PIP)
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

weights: setup
	$(BIN)/characterbench weights fetch

demo: setup weights
	$(BIN)/python scripts/demo.py $(DEMO_OUT)

test: setup weights
	bash scripts/ci_extras.sh
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf $(DEMO_OUT)
