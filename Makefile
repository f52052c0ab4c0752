# auditkit: the commands users and CI run. Real logic lives in Rust crates and
# crates/devstack/setup.sh; this file only wires them together.
#
#   make demo    run the pipeline locally, end to end, against the embedded stack
#   make test    the whole test suite (installs what it needs first)
#   make ci      format check, clippy, then make test (what .ci/run calls)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# One target directory for every build of this checkout (tests, demo, benchmarks).
export CARGO_TARGET_DIR ?= $(CURDIR)/target
AUDITKIT_VENV ?= $(CURDIR)/.venv
export AUDITKIT_VENV

.PHONY: help setup test demo ci fmt fmt-check lint bench-coldstart bench-copy release clean

help:
	@echo "make demo              run the audit-log backup end to end on the local stack"
	@echo "make test              run every test (sets up the venv and checks system packages)"
	@echo "make ci                cargo fmt --check, clippy -D warnings, make test"
	@echo "make bench-coldstart   cold start and size of the release binaries"
	@echo "make bench-copy        256 MiB log copy: time and peak RSS vs aws s3 cp"

## Python venv (moto) and Debian packages; cheap when already done.
setup:
	@bash crates/devstack/setup.sh

test: setup
	@# The end-to-end tests run the function binaries, so build them all first.
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --workspace --all-targets --locked

demo: setup
	$(CARGO) build --locked --workspace --bins
	"$(CARGO_TARGET_DIR)/debug/demo"

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

ci: fmt-check lint test

FUNCTIONS := db-scanner log-detector log-downloader

release:
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS))

bench-coldstart: release
	@# The harness itself need not be optimised: it only waits for the child's first request.
	$(CARGO) build --locked -p devstack --bin coldstart
	"$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/db-scanner" \
		QUEUE_URL=http://127.0.0.1:9/000000000000/scan
	"$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/log-detector" TRACKING_TABLE=t
	"$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/log-downloader" \
		TRACKING_TABLE=t BACKUP_BUCKET=b

## 256 MiB audit file through the release log-downloader vs `aws s3 cp`, peak RSS included.
bench-copy: setup release
	$(CARGO) build --locked -p devstack --bin bench_copy
	"$(CARGO_TARGET_DIR)/debug/bench_copy" "$(CARGO_TARGET_DIR)/release/log-downloader"

clean:
	$(CARGO) clean
	rm -rf "$(AUDITKIT_VENV)"
