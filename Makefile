# Two entry points (see README): `make demo` and `make test`. Both go through `make install`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.skugen-installed
APT_PKGS := dataset-fashion-mnist chromium

.PHONY: install demo test test-fast lint-imports system-deps gpu-check bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# System packages (Fashion-MNIST, Chromium for the HTML-report test). Only where apt exists;
# elsewhere skugen downloads Fashion-MNIST itself (SKUGEN_ALLOW_DOWNLOAD=1) and Chromium tests skip.
system-deps:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	  fi; \
	else echo "no apt-get: skipping system packages (see README)"; fi

# Idempotent: re-runs when pyproject.toml changed or a module was added or removed (the source directories'
# mtimes). torch is pinned to the CPU build explicitly BEFORE the extras, so no open range can pull a multi-GB
# CUDA build. editable_mode=strict: setuptools lays the three trees (sdk/ -> skugen, export/ -> skugen.export,
# kernels/ -> skugen.kernels) out as ONE package of symlinks in build/__editable__.*, as a wheel installs them,
# so tools that find modules by walking the package directory (import-linter's grimp: a bare `lint-imports`)
# see skugen.export and skugen.kernels; edits show at once, a NEW module needs `make install` (this rule).
SRC_DIRS := $(shell find sdk export kernels -type d -not -name __pycache__ -not -path '*/zoo*' 2>/dev/null)
install: system-deps $(STAMP)
$(STAMP): pyproject.toml $(SRC_DIRS) | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[export,openvino,sign,test]' --config-settings editable_mode=strict
	@touch $(STAMP)

demo: install
	$(BIN)/skugen data check --require fmnist   # reports GroceryStore too; the demo needs only Fashion-MNIST
	$(BIN)/skugen pipeline --model fmnist-cgan --out runs/demo --preset fast

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The .importlinter layering contract: the bare tool on the installed (strict editable) package, then the test
# that also stages the trees and checks that a forbidden import is caught.
lint-imports: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q tests/test_architecture.py

gpu-check:
	bash scripts/gpu_check.sh

bench: install
	$(BIN)/python benchmarks/run_suite.py

clean:
	rm -rf $(VENV) build *.egg-info runs
