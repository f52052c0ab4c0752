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

.PHONY: help setup test demo ci fmt fmt-check lint bench-coldstart bench-copy bench-transform bench-plan bench-audit-api bench-validate bench-history release clean \
	build-and-push-versioned increment-version deploy-ecr deploy rollback version-info

ENV ?= dev
STACK ?= auditkit
# The venv's AWS CLI when present (make setup installs it), else the one on PATH.
AWS ?= $(if $(wildcard $(AUDITKIT_VENV)/bin/aws),$(AUDITKIT_VENV)/bin/aws,aws)

help:
	@echo "make demo              run the audit-log backup end to end on the local stack"
	@echo "make test              run every test (sets up the venv and checks system packages)"
	@echo "make ci                cargo fmt --check, clippy -D warnings, make test"
	@echo "make bench-coldstart   cold start and size of the release binaries"
	@echo "make bench-copy        256 MiB log copy: time and peak RSS vs aws s3 cp"
	@echo "make bench-transform   stream-to-firehose transform records/s beside the Python anchor, and PutRecordBatch on moto"
	@echo "make bench-plan        table-updater: parse, validate and build a 20-attribute update"
	@echo "make bench-pg-auditor  pg-auditor on the 1,004-table benchmark database (auto and exact)"
	@echo "make bench-validate    auditkit validate: 1 GiB in 1,000 files vs sha256sum, and on S3"
	@echo "make bench-history     auditkit history: compressed change log scanned per core vs gzip -dc"
	@echo "make bench-audit-api   audit-api: ingest, search and export on 5M events (needs wrk)"
	@echo "make build-and-push-versioned VERSION=vX.Y.Z   images to ECR (or REGISTRY), recorded in the config"
	@echo "make deploy-ecr / make deploy ENV=dev          CloudFormation deploys of the two stacks"
	@echo "make rollback FUNCTION=name|all VERSION=vX.Y.Z  move live aliases back, no deploy"
	@echo "make version-info / make increment-version"

## Python venv (moto) and Debian packages; cheap when already done.
setup:
	@bash crates/devstack/setup.sh

test: setup
	@# The end-to-end tests run the function binaries, so build them all first.
	$(CARGO) build --workspace --bins --locked
	@# Every test binary runs even after one fails: the summary lists every failure.
	$(CARGO) test --workspace --all-targets --locked --no-fail-fast

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

FUNCTIONS := db-scanner log-detector log-downloader stream-to-firehose table-updater pg-auditor audit-api digest-writer

## Transform throughput (records/s, one core) and the same batch's PutRecordBatch time on moto.
bench-transform: setup
	AUDITKIT_VENV=$(AUDITKIT_VENV) bash bench/stream-transform-vs-python.sh

## table-updater: parse, validate and build the update for a 20-attribute request (µs per request).
bench-plan:
	$(CARGO) bench --locked -p table-updater --bench plan

## Evidence validation: auditkit validate --dir on 1 GiB in 1,000 files vs sha256sum, and on S3.
bench-validate: setup
	$(CARGO) bench --locked -p auditkit --bench validate

## audit-api: search p50/p95 on 5M events, 100k-row xlsx export, single and batch ingest (wrk).
bench-history:
	$(CARGO) bench --locked -p auditkit --bench history

bench-audit-api:
	CARGO_TARGET_DIR="$(CARGO_TARGET_DIR)" bench/audit-api.sh

## pg-auditor on the issue's 1,004-table, 9.1M-row database: wall time and peak RSS, auto and exact.
bench-pg-auditor:
	CARGO_TARGET_DIR="$(CARGO_TARGET_DIR)" bench/pg-auditor.sh $(DATABASE_URL)

release:
	$(CARGO) build --release --locked $(addprefix -p ,$(FUNCTIONS))

bench-coldstart: setup release
	@# The harness itself need not be optimised: it only waits for the child's first request.
	$(CARGO) build --locked -p devstack --bin coldstart
	"$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/db-scanner" \
		QUEUE_URL=http://127.0.0.1:9/000000000000/scan
	"$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/log-detector" TRACKING_TABLE=t
	"$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/log-downloader" \
		TRACKING_TABLE=t BACKUP_BUCKET=b
	"$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/stream-to-firehose" \
		DELIVERY_STREAM_NAME=changes
	@# table-updater reads the table's key schema (DescribeTable) before its first request.
	MOTO_TABLE=users "$(CARGO_TARGET_DIR)/debug/coldstart" "$(CARGO_TARGET_DIR)/release/table-updater" \
		TABLE_NAME=users

## 256 MiB audit file through the release log-downloader vs `aws s3 cp`, peak RSS included.
bench-copy: setup release
	$(CARGO) build --locked -p devstack --bin bench_copy
	"$(CARGO_TARGET_DIR)/debug/bench_copy" "$(CARGO_TARGET_DIR)/release/log-downloader"

# REGISTRY=host[:port] (default: the account's ECR), INSECURE=1 for a plain-HTTP registry,
# BASE_IMAGE (default public.ecr.aws/lambda/provided:al2023), ARCH=x86_64|arm64.
RELEASE_FLAGS = $(if $(REGISTRY),--registry "$(REGISTRY)") $(if $(INSECURE),--insecure) \
	$(if $(BASE_IMAGE),--base-image "$(BASE_IMAGE)") $(if $(ARCH),--arch "$(ARCH)")

## Release: images tagged VERSION for every function, pushed to ECR (or REGISTRY), recorded
## with their digests in infra-main/config/$(ENV).json. CONTAINER_TOOL=buildah|docker, ARCH.
build-and-push-versioned:
	@test -n "$(VERSION)" || { echo "usage: make build-and-push-versioned VERSION=vX.Y.Z [ENV=dev] [REGISTRY=host[:port]] [ARCH=x86_64|arm64]" >&2; exit 2; }
	$(CARGO) run --locked -q -p xtask -- build-and-push-versioned --version "$(VERSION)" --env "$(ENV)" \
		$(RELEASE_FLAGS)

## Patch bump of the configured version, then build-and-push-versioned.
increment-version:
	$(CARGO) run --locked -q -p xtask -- increment-version --env "$(ENV)" $(RELEASE_FLAGS)

## Move FUNCTION's (or all) `live` alias to the published version running VERSION; no deploy.
rollback:
	@test -n "$(FUNCTION)" -a -n "$(VERSION)" || { echo "usage: make rollback FUNCTION=name|all VERSION=vX.Y.Z [ENV=dev] [STACK=auditkit]" >&2; exit 2; }
	$(CARGO) run --locked -q -p xtask -- rollback --function "$(FUNCTION)" --version "$(VERSION)" \
		--env "$(ENV)" --stack "$(STACK)"

version-info:
	$(CARGO) run --locked -q -p xtask -- version-info --env "$(ENV)" --stack "$(STACK)"

deploy-ecr:
	$(AWS) cloudformation deploy --stack-name "$(STACK)-ecr" --template-file infra-ecr/template.yaml \
		--parameter-overrides RepositoryPrefix=auditkit

deploy:
	$(AWS) cloudformation deploy --stack-name "$(STACK)" --template-file infra-main/template.yaml \
		--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --parameter-overrides "file://infra-main/config/$(ENV).json"

clean:
	$(CARGO) clean
	rm -rf "$(AUDITKIT_VENV)"
