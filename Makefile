# regis: common tasks. Each target is a thin wrapper; the logic lives in the
# scripts under local/ so it can be read and run on its own.
SHELL := /bin/bash

.PHONY: up down test fmt lint check-infra

## up: start LocalStack, one redis-server and one worker per region; write .regis/env.json
up:
	local/up.sh

## down: stop everything `make up` started
down:
	local/down.sh

## test: up, cargo test --workspace, infra checks, down (always), with timings
test:
	local/test.sh

## fmt: format the workspace
fmt:
	cargo fmt --all

## lint: formatting check and clippy with warnings as errors
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## check-infra: Terraform checks (infra/check.sh), when present
check-infra:
	@if [ -x infra/check.sh ]; then infra/check.sh; \
	else echo "infra/check.sh not present: nothing to check"; fi
