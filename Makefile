# CartPilot: everything runs from .venv, which `make install` builds from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install demo test lint typecheck unit browser bench schema clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Debian's chromium for the Playwright page tests (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

demo: install
	$(BIN)/cartpilot demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy layers/core/python/cartpilot local infra functions

# Two runs: the end-to-end tests share one local stack per process, which owns the emulated
# AWS account; the other tests build their own throwaway accounts and must not meet it.
test: install browser lint typecheck
	$(BIN)/pytest -n 2 --dist loadgroup -q tests/unit tests/integration tests/infra
	$(BIN)/pytest -n 2 -q tests/e2e

unit: install
	$(BIN)/pytest -q tests/unit

schema: install
	$(BIN)/python -c "from pathlib import Path; from cartpilot.plans.model import write_plan_schema; write_plan_schema(Path('schemas/plan.schema.json'))"

bench: install
	$(BIN)/python bench/cold_start.py

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache
