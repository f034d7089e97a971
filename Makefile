# The README names these targets. Each installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV_LOCK := requirements/dev.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(DEV_LOCK) | cksum | cut -d' ' -f1)
CDK_CLI := aws-cdk@2.1148.1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: install lock dev test unit lint synth deploy bench bench-visits bench-render bench-coldstart bench-soak clean

# The dev environment exactly as the lock pins it (every file checked against its
# hashes), then the project itself, editable.
$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --requirement $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# uv writes the lock files: it resolves for other Pythons and platforms than its own
# (the Lambda layer's, every Python of the dev environment), which pip-compile cannot.
# A tool for updating the locks only, installed here on first use at this version.
UV_VERSION := 0.13.9
UV_VENV := build/uv-$(UV_VERSION)

$(UV_VENV)/bin/uv:
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)

## Write requirements/dev.lock and requirements/layer.lock from pyproject.toml, keeping
## the pinned versions that still fit. LOCK_ARGS="--upgrade" (or "--upgrade-package X").
lock: $(UV_VENV)/bin/uv
	$(PYTHON) -m infra.locks --uv $(UV_VENV)/bin/uv $(LOCK_ARGS)

## Run the system on this machine (no AWS, no Docker): moto server, local API Gateway,
## schedules, queue and stream pollers on one movable clock. DEV_ARGS="--tick-seconds 5".
dev: install
	$(BIN)/python -m infra.local $(DEV_ARGS)

## Run every check and test (what CI runs).
test: install lint
	$(BIN)/python -m pytest -q -n auto

## The quick loop: the unit tests (pure domain, and use cases on the in-memory fakes of
## tests/fakes.py), in seconds, without lint or the AWS-backed suites.
unit: install
	$(BIN)/python -m pytest -q -n auto tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Synthesize the CloudFormation template into cdk.out (offline).
synth: install
	$(BIN)/python -m infra.app

## Deploy to the AWS account of your current credentials.
deploy: install
	npx --yes $(CDK_CLI) deploy

# Sends, form posts and SES events per second against moto server, each beside its raw
# floor measured in the same run; calls and write units per operation (~2 minutes).
bench: install
	$(BIN)/python -m bench.nurture
	$(BIN)/python -m bench.writes
	$(BIN)/python -m bench.coldstart

# DynamoDB calls and write units per anonymous page view, next to one PutItem.
bench-visits: install
	$(BIN)/python -m bench.visits

# Client-side time per send (render + MIME build), now and as it was before.
bench-render: install
	$(BIN)/python -m bench.render

# Each function's cold start (import + build in a fresh interpreter) next to the floor
# `import boto3` + one client. COLDSTART_ARGS="--stack", "--no-bytecode", "--check".
bench-coldstart: install
	$(BIN)/python -m bench.coldstart $(COLDSTART_ARGS)

# The local stack over a long run: memory and form posts per simulated day.
# SOAK_ARGS="--leads 1000 --days 90" for the README's figures.
bench-soak: install
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build cdk.out .pytest_cache .mypy_cache .ruff_cache
