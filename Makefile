# tilannekuva — developer and CI entry points.
#   make demo   zero-setup demo (no Kafka, no Redis server needed)
#   make test   start local Kafka + Redis, run the whole test suite, stop them again
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PYTHON ?= python3
PYTEST_ARGS ?=
# One pytest worker per core (pytest-xdist); the real servers' tests all in one of them
# (tests/conftest.py). PYTEST_WORKERS=0 runs everything in this process.
PYTEST_WORKERS ?= auto
XDIST = -n $(PYTEST_WORKERS) --dist loadgroup
# One BLAS thread per worker: OpenBLAS's own threads would spin against the other worker.
XDIST_ENV = OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
DEMO_ARGS ?=
export PYTHON

.DEFAULT_GOAL := help
.PHONY: help setup services-up services-down services-status test test-unit demo lint

help:
	@echo "make demo            run the zero-setup demo (tilannekuva demo)"
	@echo "make test            start Kafka + Redis, run pytest, always stop them; exit code = pytest's"
	@echo "make test-unit       pytest -m 'not integration' (no services)"
	@echo "make setup           install system packages, Python deps and Kafka jars (start nothing)"
	@echo "make services-up     infra/up: start Kafka + Redis, create topics, write var/env"
	@echo "make services-down   infra/down: stop them"
	@echo "make lint            ruff check, ruff format --check, layer contract (import-linter), mypy"

setup:
	bash "$(ROOT)/infra/up" --install-only

services-up:
	bash "$(ROOT)/infra/up"

services-down:
	bash "$(ROOT)/infra/down"

services-status:
	-bash "$(ROOT)/infra/kafka.sh" status
	-bash "$(ROOT)/infra/redis.sh" status

# Services are stopped whatever happens (KEEP_SERVICES=1 leaves them running);
# the exit code is pytest's (or infra/up's, if the services did not come up).
test:
	@cd "$(ROOT)"; rc=0; \
	if bash infra/up; then \
	    set -a; source var/env; set +a; \
	    $(XDIST_ENV) $(PYTHON) -m pytest $(XDIST) $(PYTEST_ARGS) || rc=$$?; \
	else \
	    rc=$$?; echo "make test: infra/up failed (exit $$rc)" >&2; \
	fi; \
	if [[ "$${KEEP_SERVICES:-0}" != 1 ]]; then bash infra/down || true; fi; \
	exit $$rc

test-unit:
	cd "$(ROOT)" && bash infra/python-deps && $(XDIST_ENV) $(PYTHON) -m pytest -m "not integration" $(XDIST) $(PYTEST_ARGS)

demo:
	cd "$(ROOT)" && bash infra/python-deps && $(PYTHON) -m tilannekuva.cli demo $(DEMO_ARGS)

# Every check runs even if an earlier one fails; the summary names the failed ones and
# the exit code is 1 if any failed. Configuration: pyproject.toml ([tool.ruff],
# [tool.importlinter], [tool.mypy]).
lint:
	@cd "$(ROOT)"; bash infra/python-deps; failed=""; \
	step() { local name="$$1"; shift; echo "== lint: $$name"; \
	         if "$$@"; then echo "   ok: $$name"; else echo "   FAILED: $$name" >&2; failed+=" [$$name]"; fi; }; \
	step "ruff check" $(PYTHON) -m ruff check .; \
	step "ruff format --check" $(PYTHON) -m ruff format --check .; \
	step "layer contract (lint-imports)" $(PYTHON) -c \
	    "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"; \
	step "mypy" $(PYTHON) -m mypy; \
	if [[ -n "$$failed" ]]; then echo "make lint: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make lint: all checks passed"
