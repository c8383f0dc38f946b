# Developer entry points for the referral platform. `make help` lists the targets.
#
# Every variable below can be overridden on the command line or from the environment,
# e.g. `make run AMQP_URL=amqp://user:pw@host:5672/%2F` or `make venv PYTHON=/opt/py312/bin/python3.12`.
#
# Two installs share .venv: `make run` (and keys, advocacy, webhook-echo) installs only what running needs (the
# project's dependencies); `make test`, `lint` and the rest add the dev tools (`.[dev]`), `make bench` `.[dev,bench]`.
# Supported Pythons: 3.11 to 3.13 (pyproject.toml's requires-python); 3.11 by default. `make test` also runs the unit
# tests on a second one of them (`make test-python`).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
VAR := $(CURDIR)/var
KEYS := $(VAR)/keys
PYTEST_ARGS ?=

# Environment of `make run` (the SQLite files live under var/; `make clean` removes them).
AMQP_URL ?= amqp://guest:guest@localhost:5672/%2F
INTAKE_DATABASE_URL ?= sqlite:///$(VAR)/intake.db
ADVOCACY_DATABASE_URL ?= sqlite:///$(VAR)/advocacy-demo-charity.db
NOTIFICATIONS_DATABASE_URL ?= sqlite:///$(VAR)/notifications.db
PROVIDER_ID ?= demo-charity
AUTO_ACCEPT ?= true
INTAKE_URL ?= http://127.0.0.1:8001
AUTH_PUBLIC_KEY_FILE ?= $(KEYS)/dev-public.pem
AUTH_PRIVATE_KEY_FILE ?= $(KEYS)/dev-private.pem
AUTH_ISSUER ?= referrals-dev
AUTH_AUDIENCE ?= referrals
WEBHOOK_ALLOW_PRIVATE ?= true
# The advocate's page signs in by choosing an advocate, no password: local use only (README, "The advocate's page").
ADVOCACY_DEV_SIGNIN ?= true
LOG_LEVEL ?= INFO

# Exported to `run` (and what it depends on) only, so that `make test` sees none of them.
run: export AMQP_URL := $(AMQP_URL)
run: export INTAKE_DATABASE_URL := $(INTAKE_DATABASE_URL)
run: export ADVOCACY_DATABASE_URL := $(ADVOCACY_DATABASE_URL)
run: export NOTIFICATIONS_DATABASE_URL := $(NOTIFICATIONS_DATABASE_URL)
run: export PROVIDER_ID := $(PROVIDER_ID)
run: export AUTO_ACCEPT := $(AUTO_ACCEPT)
run: export INTAKE_URL := $(INTAKE_URL)
run: export AUTH_PUBLIC_KEY_FILE := $(AUTH_PUBLIC_KEY_FILE)
run: export AUTH_PRIVATE_KEY_FILE := $(AUTH_PRIVATE_KEY_FILE)
run: export AUTH_ISSUER := $(AUTH_ISSUER)
run: export AUTH_AUDIENCE := $(AUTH_AUDIENCE)
run: export WEBHOOK_ALLOW_PRIVATE := $(WEBHOOK_ALLOW_PRIVATE)
run: export ADVOCACY_DEV_SIGNIN := $(ADVOCACY_DEV_SIGNIN)
run: export LOG_LEVEL := $(LOG_LEVEL)
# Procfile.dev names bare `gunicorn` and `python`: take them from the venv.
run: export PATH := $(BIN):$(PATH)

# `make advocacy` (one more charity's instance): its own id, port and SQLite file unless given.
# (Read here, at parse time: inside the target, its own exported PROVIDER_ID would look set by this file.)
PROVIDER_ID_GIVEN := $(filter environment command line,$(origin PROVIDER_ID))
ADVOCACY_DB_DEFAULT = $(if $(filter environment command line,$(origin ADVOCACY_DATABASE_URL)),$(ADVOCACY_DATABASE_URL),sqlite:///$(VAR)/advocacy-$(PROVIDER_ID).db)
advocacy: export AMQP_URL := $(AMQP_URL)
advocacy: export ADVOCACY_DATABASE_URL := $(ADVOCACY_DB_DEFAULT)
advocacy: export PROVIDER_ID := $(PROVIDER_ID)
advocacy: export AUTO_ACCEPT := $(if $(filter environment command line,$(origin AUTO_ACCEPT)),$(AUTO_ACCEPT),false)
advocacy: export ADVOCACY_PORT := $(PORT)
# The worker's /healthz and /readyz: WORKER_PORT if given, else the API's port + 1000 (PORT=8012: 9012).
advocacy: export ADVOCACY_WORKER_PORT = $(or $(WORKER_PORT),$(if $(PORT),$(shell expr $(PORT) + 1000)))
advocacy: export INTAKE_URL := $(INTAKE_URL)
advocacy: export AUTH_PUBLIC_KEY_FILE := $(AUTH_PUBLIC_KEY_FILE)
advocacy: export AUTH_PRIVATE_KEY_FILE := $(AUTH_PRIVATE_KEY_FILE)
advocacy: export AUTH_ISSUER := $(AUTH_ISSUER)
advocacy: export AUTH_AUDIENCE := $(AUTH_AUDIENCE)
advocacy: export LOG_LEVEL := $(LOG_LEVEL)
advocacy: export ADVOCACY_DEV_SIGNIN := $(ADVOCACY_DEV_SIGNIN)
advocacy: export PATH := $(BIN):$(PATH)

.PHONY: help runtime venv keys run advocacy webhook-echo compose-dev test test-unit test-python bench bench-profile bench-latency chaos lint fmt typecheck clean

help: ## Show this list of targets
	@echo "Usage: make <target>"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

runtime: $(RUN_STAMP) ## Create .venv and install what running needs (no dev tools), when needed

venv: $(STAMP) ## Create .venv and install the project with its dev tools (.[dev]), when needed

# A supported Python (3.11-3.13): the check prints the fix rather than a resolver error from pip.
SUPPORTED_PYTHON := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))
$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; run 'make <target> PYTHON=/path/to/python3.11' (3.11-3.13)" >&2; exit 1; }
	@$(PYTHON) -c '$(SUPPORTED_PYTHON)' || { echo "error: $(PYTHON) is $$($(PYTHON) -V 2>&1), not 3.11-3.13; run 'make <target> PYTHON=/path/to/python3.11'" >&2; exit 1; }
	@echo "==> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

# Each re-installs only when .venv is missing or pyproject.toml / requirements.lock is newer than its stamp.
$(RUN_STAMP): pyproject.toml requirements.lock | $(VENV)/bin/python
	@echo "==> installing the project (what running needs) into $(VENV)"
	$(VENV)/bin/pip install --disable-pip-version-check -c requirements.lock -e .
	@touch $@

$(STAMP): pyproject.toml requirements.lock | $(VENV)/bin/python
	@echo "==> installing the project with its dev tools (.[dev]) into $(VENV)"
	$(VENV)/bin/pip install --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

keys: runtime ## Create the dev signing keys var/keys/dev-{private,public}.pem and data KEK dev-data-kek.b64 if absent
	$(BIN)/referrals-token --ensure-keys

run: runtime keys ## Migrate and seed SQLite dev databases, then start all six processes (Ctrl-C stops)
	@mkdir -p $(VAR)
	@echo "==> migrating (SQLite files under var/)"
	$(BIN)/referrals-migrate intake
	$(BIN)/referrals-migrate advocacy
	$(BIN)/referrals-migrate notifications
	@echo "==> seeding demo data (provider $(PROVIDER_ID), its advocates and demo cases)"
	$(BIN)/python -m services.intake.seed_demo
	$(BIN)/python -m services.advocacy.seed_demo
	@$(BIN)/python -c 'import os, socket, urllib.parse as u; p = u.urlsplit(os.environ["AMQP_URL"]); socket.create_connection((p.hostname or "localhost", p.port or 5672), timeout=2).close()' 2>/dev/null \
		|| echo "warning: RabbitMQ does not answer at AMQP_URL; start it (e.g. 'rabbitmq-server -detached'): the workers keep retrying until it does"
	@echo
	@echo "  intake         http://127.0.0.1:8001   docs http://127.0.0.1:8001/docs"
	@echo "  advocacy       http://127.0.0.1:8002   docs http://127.0.0.1:8002/docs   (provider $(PROVIDER_ID), AUTO_ACCEPT=$(AUTO_ACCEPT))"
	@echo "  notifications  http://127.0.0.1:8003   docs http://127.0.0.1:8003/docs"
	@echo "  advocate page  http://127.0.0.1:8002/   sign in as a demo advocate (dev sign-in); demo cases with clocks, one overdue"
	@echo "  health         GET /healthz and /readyz on each; the workers' on 127.0.0.1:9101, 9102 and 9103"
	@echo
	@echo "  A token (RS256, signed with var/keys/dev-private.pem), from another terminal in $(CURDIR):"
	@echo '    TOKEN=$$(.venv/bin/referrals-token --org met-police --kind police --scope "referrals:write referrals:read subscriptions:write")'
	@echo '    curl -H "Authorization: Bearer $$TOKEN" http://127.0.0.1:8001/v1/referrals'
	@echo '  As the demo charity: --org $(PROVIDER_ID) --kind provider --scope "offers:respond cases:read cases:write"'
	@echo '  Traces: set OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 to send them to a collector.'
	@echo
	@echo "==> starting (Ctrl-C stops everything)"
	@# -e /dev/null: the repo's .env holds docker compose image versions, not settings for these processes.
	exec $(BIN)/honcho -f Procfile.dev -e /dev/null start

advocacy: runtime keys ## One more charity's instance: PROVIDER_ID=<id> PORT=<port> AUTO_ACCEPT=<true|false> make advocacy
	@if [ -z "$(PROVIDER_ID_GIVEN)" ] || [ -z "$(PORT)" ]; then \
		echo "usage: PROVIDER_ID=<id> PORT=<port> [AUTO_ACCEPT=true|false] make advocacy" >&2; \
		echo "  e.g. PROVIDER_ID=north-charity PORT=8012 make advocacy (then register it: README, 'How a charity joins')" >&2; \
		exit 2; fi
	@mkdir -p $(VAR)
	$(BIN)/referrals-migrate advocacy
	@echo
	@echo "  advocacy ($(PROVIDER_ID))  http://127.0.0.1:$(PORT)   docs http://127.0.0.1:$(PORT)/docs   AUTO_ACCEPT=$$AUTO_ACCEPT"
	@echo "  database                 $$ADVOCACY_DATABASE_URL"
	@echo "  worker health            http://127.0.0.1:$$ADVOCACY_WORKER_PORT/readyz"
	@echo
	exec $(BIN)/honcho -f Procfile.advocacy -e /dev/null start

webhook-echo: runtime ## A stand-in agency webhook endpoint on http://127.0.0.1:9000 (WEBHOOK_SECRET= verifies)
	$(BIN)/python scripts/webhook_echo.py

# The whole stack in containers with dev keys and dev passwords (docker-compose.yml's header; README, "Run it").
COMPOSE ?= docker compose
COMPOSE_DEV := $(COMPOSE) --env-file .env --env-file deploy/compose/dev.env --profile dev
compose-dev: ## docker compose up with dev keys (DEMO=true: the demo charity and its cases); Docker Compose 2.20+
	$(COMPOSE_DEV) up --build

# The AsyncAPI project's JSON Schemas (tests/integration/test_asyncapi.py) and axe-core (the advocate's page's
# accessibility test, tests/e2e/test_advocate_page_accessibility.py), exactly as package-lock.json pins them.
# The stamp lives in node_modules/, so removing node_modules reinstalls (npm ci removes it first anyway).
CONTRACTS := tests/contracts
CONTRACTS_STAMP := $(CONTRACTS)/node_modules/.installed
$(CONTRACTS_STAMP): $(CONTRACTS)/package.json $(CONTRACTS)/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js and npm (e.g. 'apt-get install npm'), then run make test again" >&2; exit 1; }
	npm ci --prefix $(CONTRACTS) --no-audit --no-fund
	@touch $@

test: venv $(CONTRACTS_STAMP) ## Type-check, run the whole suite (TEST_AMQP_URL / TEST_DATABASE_URL, else the local services, else testcontainers), then test-python
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-python

test-unit: venv ## Run the unit tests only (pytest -m unit): no broker or database needed
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

# The unit tests on a second supported Python, so that 3.11-3.13 is more than a promise: the newest of
# OTHER_PYTHON_VERSIONS found (on PATH, else under pyenv's versions/) that is not .venv's own, in .venv-<version>,
# installed with the same pins. None found fails with the fix: OTHER_PYTHON=/path/to/python3.x, or
# OTHER_PYTHON=none to skip on a machine that has one Python only (CI never does).
OTHER_PYTHON ?=
OTHER_PYTHON_VERSIONS := 3.13 3.12 3.11
OTHER_PYTEST_ARGS ?=
test-python: ## The unit tests on another supported Python in .venv-<version> (OTHER_PYTHON=<path> or none)
	@if [ "$(OTHER_PYTHON)" = none ]; then echo "==> test-python: skipped (OTHER_PYTHON=none)"; exit 0; fi; \
	main=$$($(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,$(PYTHON)) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	other="$(OTHER_PYTHON)"; \
	if [ -z "$$other" ]; then \
		for version in $(OTHER_PYTHON_VERSIONS); do \
			[ "$$version" != "$$main" ] || continue; \
			for candidate in $$(command -v python$$version) $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$version.*/bin/python$$version 2>/dev/null | sort -rV); do \
				if "$$candidate" -c '$(SUPPORTED_PYTHON)' 2>/dev/null; then other=$$candidate; break 2; fi; \
			done; \
		done; \
	fi; \
	if [ -z "$$other" ]; then \
		echo "error: no second Python among $(OTHER_PYTHON_VERSIONS) besides $$main for the unit tests; install one (e.g. 'pyenv install 3.13'), or run 'make test OTHER_PYTHON=/path/to/python3.x' (OTHER_PYTHON=none skips)" >&2; \
		exit 1; \
	fi; \
	"$$other" -c '$(SUPPORTED_PYTHON)' || { echo "error: OTHER_PYTHON=$$other is $$("$$other" -V 2>&1), not 3.11-3.13" >&2; exit 1; }; \
	version=$$("$$other" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	venv=.venv-$$version; \
	echo "==> unit tests on Python $$version ($$other) in $$venv"; \
	if [ ! -x $$venv/bin/python ]; then "$$other" -m venv $$venv; fi; \
	if [ ! $$venv/.installed -nt pyproject.toml ] || [ ! $$venv/.installed -nt requirements.lock ]; then \
		$$venv/bin/pip install --disable-pip-version-check -q -c requirements.lock -e '.[dev]' && touch $$venv/.installed; \
	fi; \
	$$venv/bin/pytest -m unit -p no:cacheprovider $(OTHER_PYTEST_ARGS)

# The benchmark's extra (matplotlib, for the plot), installed on first use only.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -c requirements.lock -e '.[dev,bench]'
	@touch $@

BENCH_ARGS ?=
bench: venv $(BENCH_STAMP) ## Latency, sustained rate, burst, memory and this machine's ceilings; < 5 min (bench/README.md)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

RATE ?= 25
PROFILE_SECONDS ?= 15
bench-profile: venv ## py-spy every process while referrals arrive at RATE/s for PROFILE_SECONDS (needs root or ptrace rights)
	$(BIN)/python -m bench.profile --rate $(RATE) --seconds $(PROFILE_SECONDS)

bench-latency: venv ## POST -> webhook latency over 50 referrals sent one at a time (needs RabbitMQ + PostgreSQL)
	$(BIN)/python -m bench.latency --count 50

# `make chaos CLUSTER=3`: the same faults on a cluster of three private nodes, killing the one leading the queues.
CLUSTER ?=
CHAOS_ARGS ?=
chaos: venv ## Faults while referrals arrive; exit 1 on any lost, stalled or doubled; < 10 min (CLUSTER=3: a cluster)
	$(BIN)/python -m bench.chaos $(if $(CLUSTER),--cluster $(CLUSTER)) $(CHAOS_ARGS)

lint: venv ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: venv ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix --exit-zero .
	$(BIN)/ruff format .

typecheck: venv ## mypy over services/, shared/ and contracts/ (make test runs it first)
	$(BIN)/mypy

clean: ## Remove the dev SQLite databases under var/ (keeps var/keys)
	rm -f $(VAR)/*.db $(VAR)/*.db-wal $(VAR)/*.db-shm $(VAR)/*.db-journal
