# regis: common tasks. Each target is a thin wrapper; the logic lives in the
# scripts under local/ so it can be read and run on its own.
SHELL := /bin/bash

.PHONY: help up down test demo fmt lint check-infra bench fuzz

## help: list the targets with what they do (this text)
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); name = $$1; sub(/:$$/, "", name); sub(/^[a-z-]+: */, ""); printf "  %-12s %s\n", name, $$0; next } \
	     /^## / { sub(/^## /, ""); printf "  %-12s %s\n", "", $$0 }' $(MAKEFILE_LIST)

## up: start LocalStack, one redis-server and one worker per region; write .regis/env.json
up:
	local/up.sh

## down: stop everything `make up` started
down:
	local/down.sh

## test: up, cargo test --workspace, infra checks, down (always), with timings
test:
	local/test.sh

## demo: up, replicate a sample hotel workload, per-region report, down (KEEP=1 keeps it up)
demo:
	local/demo.sh

## fmt: format the workspace
fmt:
	cargo fmt --all

## lint: formatting check and clippy with warnings as errors
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## check-infra: Terraform checks (infra/check.sh): parse, provider schema, checkov, fmt, tests
check-infra:
	@if [ -x infra/check.sh ]; then infra/check.sh; \
	else echo "infra/check.sh not present: nothing to check"; fi

## bench: the benchmark suite (release build); prints a table and writes bench/results.json.
## Installs valkey-server (local/valkey.sh) for the apply figures on Valkey.
## Uses the LocalStack on 127.0.0.1:$REGIS_LOCALSTACK_PORT; when none runs, brings the
## environment up for the run and takes it down again afterwards.
bench:
	cargo build --release -p regis-cli -p regis-bench
	@port="$${REGIS_LOCALSTACK_PORT:-4566}"; \
	export AWS_ENDPOINT_URL="http://127.0.0.1:$$port"; \
	if [ -z "$${REGIS_VALKEY_SERVER:-}" ]; then \
		REGIS_VALKEY_SERVER="$$(local/valkey.sh)" || exit 1; export REGIS_VALKEY_SERVER; \
	fi; \
	if curl -fsS --max-time 3 "$$AWS_ENDPOINT_URL/_localstack/health" >/dev/null 2>&1; then \
		target/release/regis-bench; \
	else \
		echo "no LocalStack at $$AWS_ENDPOINT_URL: starting the local environment for the benchmark"; \
		REGIS_NO_WORKERS=1 local/up.sh || exit 1; \
		status=0; target/release/regis-bench || status=$$?; \
		local/down.sh; exit $$status; \
	fi

## fuzz: a coverage-guided cargo-fuzz run of the wire decoder (FUZZ_SECONDS=60)
fuzz:
	local/fuzz.sh run $${FUZZ_SECONDS:-60}
