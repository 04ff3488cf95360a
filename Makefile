# Zastava — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)
PYTEST_ARGS ?=

.PHONY: install system-deps test test-fast lint run bench fuzz image manifests clean

## install: create .venv and install zastava with its dev extras (idempotent)
install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## system-deps: Debian packages for the real-component suites (only when root)
system-deps: install
	@if [ "$(IS_ROOT)" = 1 ]; then $(BIN)/python -m tests.harness.devstack install; \
	 else echo "system-deps: not root; real-component suites will be skipped if their packages are missing"; fi

## lint: ruff, mypy (strict on src/) and the import-layer contracts (import-linter, pyproject.toml)
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: everything — lint, unit and real-component suites (as root, real components are required)
test: install system-deps lint
	ZASTAVA_REQUIRE_REAL=$(IS_ROOT) $(BIN)/python -m pytest $(PYTEST_ARGS)

## test-fast: unit tests only
test-fast: install
	$(BIN)/python -m pytest tests/unit -q $(PYTEST_ARGS)

## run: the whole stack on this machine (backend on SQLite, observer on a real engine, webhook)
run: install system-deps
	$(BIN)/python -m tests.harness.devstack run

## bench: all benchmarks, figures and same-run baseline ratios
bench: install system-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## fuzz: the long-run fuzz targets of tests/fuzz (FUZZ_CASES each, default 100000; CI runs a sample in pytest)
FUZZ_CASES ?= 100000
fuzz: install
	$(BIN)/python -m tests.fuzz --cases $(FUZZ_CASES) $(FUZZ_TARGETS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info

## manifests: render the Helm chart into deploy/manifests/ (plain manifests, namespace stellaops). No secret
## material is committed: certificates come from cert-manager (a CA Issuer named zastava-ca) and the Authority
## client secrets from a Secret you create (docs/deploy.md, "Plain manifests").
MANIFEST_VALUES = --set generateSecrets=false --set certManager.enabled=true --set certManager.issuerRef.name=zastava-ca
manifests: install
	@helm=$$($(BIN)/python -c 'from tests.harness.devstack.helm import ensure_helm; print(ensure_helm())') && \
	 $$helm template zastava deploy/helm/zastava --namespace stellaops $(MANIFEST_VALUES) > deploy/manifests/zastava.yaml
	@echo "deploy/manifests/zastava.yaml rendered"

## image: build the container image (BASE_IMAGE=python:3.11-slim-bookworm by default)
IMAGE ?= zastava:dev
BASE_IMAGE ?= python:3.11-slim-bookworm
image:
	docker build --tag $(IMAGE) --build-arg BASE_IMAGE=$(BASE_IMAGE) .
