# Two commands on a fresh machine: `make serve` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve worker test test-gpu test-tensorrt lint bench bench-load bench-coverage bench-roundtrip bench-scale example clean chaos chaos-report

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[worker,dev]'
	touch $(STAMP)

install: $(STAMP)

## API on 127.0.0.1:$PORT (default 8000) plus a real Celery worker and the sweeper, both restarted
## with backoff if they die; embedded SQLite/filesystem broker by default.
serve: $(STAMP)
	$(BIN)/modelpress serve

## A worker alone (production shape: set MODELPRESS_DATABASE_URL and MODELPRESS_BROKER_URL).
worker: $(STAMP)
	$(BIN)/celery -A worker.app worker -Q cpu,webhooks -B --concurrency 2 --loglevel INFO

## The whole suite, against the real Postgres and Redis on 127.0.0.1 (needs Chromium, newman and a compose tool: installed
## by scripts/test-prereqs.sh when run as root, else it says how).
test: $(STAMP)
	bash scripts/test-prereqs.sh
	$(BIN)/pytest

## The GPU tests (deselected by `make test` through pyproject's `-m 'not gpu and not tensorrt'`): on a
## machine with an NVIDIA GPU and torch's CUDA build; the TensorRT ones need TensorRT too. Not run in CI.
test-gpu: $(STAMP)
	$(BIN)/pytest -m "gpu and not tensorrt" tests/gpu

test-tensorrt: $(STAMP)
	$(BIN)/pytest -m tensorrt tests/gpu

## Fault and security tests alone (part of `make test` too); they check, but do not rewrite, the figures.
## The outage tests stop and start their own Postgres cluster and redis-server on free loopback ports
## (initdb, pg_ctl, redis-server must be installed); the shared servers are never restarted.
chaos: $(STAMP)
	$(BIN)/pytest tests/chaos tests/security

## The fault and security tests plus the HTML report test, recording what they measure into
## docs/RELIABILITY.md, docs/reliability.json and docs/report-screenshot.png (the only target that
## rewrites them; a plain test run that changes them fails).
chaos-report: $(STAMP)
	MODELPRESS_RECORD_FIGURES=1 $(BIN)/pytest tests/chaos tests/security tests/client/test_report_html.py

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

## The API under concurrent load (embedded and Postgres + 2 API processes); writes bench/LOAD.md.
bench-load: $(STAMP)
	$(BIN)/python -m bench.load

## Every technique over real models from PyPI wheels, through the embedded service (bench/COVERAGE.md).
bench-coverage: $(STAMP)
	$(BIN)/python -m bench.coverage.run

## Service overhead per job and jobs/minute with 1 and 2 workers, local store vs SeaweedFS S3 (bench/SCALE.md).
bench-scale: $(STAMP)
	nice -n 10 $(BIN)/python -m bench.scale

## Latency of the original vs its unpruned bridge round trip (bench/ROUNDTRIP.md).
bench-roundtrip: $(STAMP)
	$(BIN)/python -m bench.coverage.roundtrip

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
