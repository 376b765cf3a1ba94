# Earshot: `make run` sets everything up and starts the service; `make test` runs the tests.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup run test test-scale lint typecheck pytest db-start db-stop schema bench clean

setup:
	@bash scripts/setup.sh

run: setup
	@$(BIN)/earshot run

db-start: setup
	@$(BIN)/earshot db start

db-stop:
	@$(BIN)/earshot db stop

lint:
	$(BIN)/ruff check service detectors ingest tests bench
	$(BIN)/hadolint Dockerfile

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -q -p no:cacheprovider -m "not scale"

# Starts the embedded database when needed and stops it again afterwards if it was not
# running before, so a test run leaves the machine as it found it.
test: setup
	@was_running=$$($(BIN)/earshot db status | grep -c '^running'); \
	$(BIN)/earshot db start >/dev/null && \
	$(MAKE) --no-print-directory lint typecheck pytest; rc=$$?; \
	[ "$$was_running" = 1 ] || $(BIN)/earshot db stop >/dev/null; exit $$rc

# The scaled topology with real processes (several workers, Dask, bridges, a replica):
# minutes, so kept out of `make test`; CI runs both.
test-scale: setup
	@was_running=$$($(BIN)/earshot db status | grep -c '^running'); \
	$(BIN)/earshot db start >/dev/null && \
	$(BIN)/pytest -q -p no:cacheprovider -m scale; rc=$$?; \
	[ "$$was_running" = 1 ] || $(BIN)/earshot db stop >/dev/null; exit $$rc

# Regenerate migrations/schema.sql from a freshly migrated database (the drift test's reference).
schema: setup
	@$(BIN)/python -m tests.schema_tool

bench: setup
	@$(BIN)/earshot db start >/dev/null
	$(BIN)/python -m bench.run

clean:
	-$(BIN)/earshot db stop
	rm -rf .data .build
