# The same commands for every developer, CI and the README.
PYTHON ?= python3
STACK  := $(PYTHON) deploy/local/stack.py
VENV   := .venv/bin
PYTEST_ARGS ?=
BENCH_ARGS ?=
SERVICES := projects tracking reporting invoicing gateway

.PHONY: up down status logs test test-unit lint protos install down-test bench bench-quick check-consistency

up:            ## install what is missing, start infrastructure and the five services
	$(STACK) up

down:          ## stop everything `make up` started (by pid file)
	$(STACK) down

status:        ## what runs, with pids and ports
	$(STACK) status

logs:          ## the tail of every log (make logs NAMES="kafka tracking")
	$(STACK) logs $(NAMES)

install:       ## the locked Python workspace, generated stubs, and the infrastructure's binaries
	$(STACK) install

protos:        ## regenerate the gRPC/protobuf stubs from protos/
	$(VENV)/python libs/protos/generate.py

test: install  ## the whole suite against real PostgreSQL, Redis, Kafka and S3 (test profile)
	$(VENV)/pytest $(PYTEST_ARGS)

test-unit: install  ## only the tests that need no infrastructure
	$(VENV)/pytest -m "not integration" $(PYTEST_ARGS)

bench: install ## every benchmark beside its ceiling on one own stack (test profile); rewrites docs/benchmarks.md
	$(VENV)/python bench/run_all.py $(BENCH_ARGS)

bench-quick: install  ## a few-minute smoke of every benchmark (table in bench/results/benchmarks-quick.md)
	$(VENV)/python bench/run_all.py --quick $(BENCH_ARGS)

down-test:     ## stop a test-profile stack left behind by an interrupted run
	$(STACK) --profile test down

check-consistency:  ## compare tracking, reporting and invoicing on `make up`'s stack (CHECK_ARGS="--settle-seconds 30 --json")
	eval "$$($(STACK) env)" && $(VENV)/python -m consistency $(CHECK_ARGS)

lint: install  ## ruff (lint + format check) and mypy
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy libs/common/tt_common $(foreach s,$(SERVICES),services/$(s)/$(s)) deploy/local/ttlocal tools/consistency/consistency
	$(VENV)/mypy bench/*.py
