# Two commands on a fresh machine: `make serve` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve worker test lint bench bench-coverage bench-roundtrip example clean chaos

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

## API on 127.0.0.1:$PORT (default 8000) plus a real Celery worker; embedded SQLite/filesystem broker by default.
serve: $(STAMP)
	$(BIN)/modelpress serve

## A worker alone (production shape: set MODELPRESS_DATABASE_URL and MODELPRESS_BROKER_URL).
worker: $(STAMP)
	$(BIN)/celery -A worker.app worker -Q cpu -B --concurrency 2 --loglevel INFO

## The whole suite, against the real Postgres and Redis on 127.0.0.1.
test: $(STAMP)
	$(BIN)/pytest

## Fault and security tests alone (part of `make test` too); they rewrite docs/RELIABILITY.md.
## They restart the local Postgres and Redis: never run them beside another test session.
chaos: $(STAMP)
	$(BIN)/pytest tests/chaos tests/security

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## A small trained model (model.onnx) and its labelled test split (eval.npz), for the README walkthrough.
example: $(STAMP)
	$(BIN)/python -m examples.digits

bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.pruning

## Every technique over real models from PyPI wheels, through the embedded service (bench/COVERAGE.md).
bench-coverage: $(STAMP)
	$(BIN)/python -m bench.coverage.run

## Latency of the original vs its unpruned bridge round trip (bench/ROUNDTRIP.md).
bench-roundtrip: $(STAMP)
	$(BIN)/python -m bench.coverage.roundtrip

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
