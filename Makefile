# Two commands do everything on a fresh machine (Python 3.11, 2 CPU cores are enough):
#   make demo   set up .venv, render the embedded default data, write previews and a results table
#   make test   set up .venv, fetch the metric weights, run the test suite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
DEMO_OUT ?= out/demo

.PHONY: setup demo test weights clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: pip finds the local CPU wheel; a range would pull CUDA builds. Never torchvision.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[all]"
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
