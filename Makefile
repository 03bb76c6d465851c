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

# Idempotent: re-runs only when pyproject.toml changed. torch is pinned to the CPU build explicitly
# BEFORE the extras, so no open range can pull a multi-GB CUDA build.
install: system-deps $(STAMP)
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[export,openvino,sign,test]'
	@touch $(STAMP)

demo: install
	$(BIN)/skugen data check --require fmnist   # reports GroceryStore too; the demo needs only Fashion-MNIST
	$(BIN)/skugen pipeline --model fmnist-cgan --out runs/demo --preset fast

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# The .importlinter layering contract. A bare `lint-imports` cannot see skugen.export (export/ is mapped
# into the package by pyproject's package-dir), so the test stages the three trees as one package first.
lint-imports: install
	$(BIN)/python -m pytest -q tests/test_architecture.py

gpu-check:
	bash scripts/gpu_check.sh

bench: install
	$(BIN)/python benchmarks/run_suite.py

clean:
	rm -rf $(VENV) build *.egg-info runs
