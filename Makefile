# loan-stream: every target installs what it needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --frozen --no-progress
# make up KAFKA_BROKERS=3: a 3-node KRaft cluster (kept by its storage until make clean)
ifdef KAFKA_BROKERS
export LOANS_STACK_KAFKA_BROKERS := $(KAFKA_BROKERS)
endif
PYTEST_ARGS ?=
# pytest workers of make test and make test-slow (each starts its own broker, MLflow, Spark)
TEST_WORKERS ?= 2
PARALLEL = $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

.PHONY: help install jars test-jvm test-slow test-tools bench-generator bench-produce soak fmt lint typecheck test test-unit up down status secrets client-config topics kafka-list kafka-delete-all kafka-recreate clean demo retrain rotate-ssn-key \
        kafka-producer-single spark-app-single spark-app-cluster spark-cluster-down spark-monitor kafka-consumer-output-% train promote serve dashboard

help: ## list the targets
	@grep -hE '^[a-zA-Z_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-28s\033[0m %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet uv 2>/dev/null \
	  || python3 -m pip install --quiet --user --break-system-packages uv \
	  || { echo "could not install uv with pip: install uv (https://docs.astral.sh/uv/) or python3-pip, then run make again" >&2; exit 1; }
	$(UV) sync --frozen --no-progress --quiet
	@touch $@

install: .venv/.installed jars ## install uv (if missing), the Python deps and the JVM jars
jars: .venv/.installed ## resolve the Kafka broker's and Spark's connector jars from Maven Central into .loans/jars (once)
	@$(RUN) loans-stack jars

fmt: .venv/.installed ## format and auto-fix
	$(RUN) ruff format . && $(RUN) ruff check --fix .
lint: .venv/.installed ## ruff lint + format check
	$(RUN) ruff check . && $(RUN) ruff format --check .
typecheck: .venv/.installed ## mypy on every package
	$(RUN) mypy
.PHONY: docs
docs: .venv/.installed ## regenerate docs/configuration.md from the settings classes
	@$(RUN) python -m core.reference
test-tools: ## Chromium (dashboard browser test) and Prometheus (Grafana dashboard's queries), Debian packages
	@command -v chromium >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
	  || (apt-get update -qq && apt-get install -y -qq chromium prometheus >/dev/null) \
	  || echo "not installed: 'sudo apt-get install chromium prometheus' (the tests that need them skip, saying so)"
test: install test-tools lint typecheck test-jvm ## lint, types, JUnit, unit and integration tests but the slow ones (starts its own Kafka + MLflow)
	$(RUN) pytest -m "not slow" $(PARALLEL) $(PYTEST_ARGS)
test-slow: install test-tools ## the slow integration tests (kills and restarts, outages, the demo); CI runs them after make test
	@rc=0; $(RUN) pytest -m "slow and not alone" $(PARALLEL) $(PYTEST_ARGS) || rc=$$?; \
	$(RUN) pytest -m "slow and alone" $(PYTEST_ARGS) || { r=$$?; [ $$r -eq 5 ] || rc=$$r; }; \
	[ $$rc -eq 5 ] && rc=0; exit $$rc  # both run whatever the first gave; 5: PYTEST_ARGS chose none of one
test-jvm: jars ## JUnit tests of the job's Java classes (sparky/jvm/test; JUnit's launcher resolved once by Maven)
	@$(RUN) loans-stack test-jvm
test-unit: .venv/.installed ## unit tests only (no services)
	$(RUN) pytest -m "not integration" $(PYTEST_ARGS)

up: install ## start Kafka (KRaft, SASL/SCRAM + ACLs) + MLflow (basic-auth) locally, make the principals and topics
	@$(RUN) loans-stack up && $(RUN) loans-topics create && $(RUN) loans-stack status
secrets: .venv/.installed ## write .loans/secrets.env (every password make up makes; one file per principal under .loans/secrets) without starting anything: for docker compose --env-file
	@$(RUN) loans-stack secrets
client-config: .venv/.installed ## a principal's settings for Kafka's Java tools and kcat into .loans/clients (PRINCIPAL=consumer)
	@$(RUN) loans-stack client-config --principal $(or $(PRINCIPAL),consumer)
rotate-ssn-key: .venv/.installed ## new HMAC key for SSN hashes in .loans/secrets.env (version + 1)
	@$(RUN) loans-stack rotate-ssn-key
down: .venv/.installed ## stop what `make up` started
	@$(RUN) loans-stack down
status: .venv/.installed ## what runs where
	@$(RUN) loans-stack status
topics: .venv/.installed ## print every topic name the project uses
	@$(RUN) loans-topics list
YES := $(if $(filter 1,$(FORCE)),--yes,)
kafka-list: up ## the project's topics as the broker has them: partitions, replicas, retention, end offsets
	@$(RUN) loans-topics describe
kafka-delete-all: up ## delete every project topic and its records, and the job's checkpoints (asks; FORCE=1 does not)
	@$(RUN) loans-topics delete-all $(YES)
kafka-recreate: up ## delete and create every project topic, empty; the job's checkpoints go too (asks; FORCE=1 does not)
	@$(RUN) loans-topics recreate $(YES)
clean: .venv/.installed ## remove local state: checkpoints, lake, broker/MLflow data, secrets (asks; FORCE=1 does not; stack down first)
	@$(RUN) loans-stack clean $(YES)

PRODUCER_ARGS ?= --rate 500
kafka-producer-single: up ## publish Lending Club history, then live applications at 500/s until Ctrl-C (PRODUCER_ARGS=...)
	@$(RUN) loans-produce $(PRODUCER_ARGS)

SPARK_ARGS ?=
spark-app-single: up ## run the one Spark job (risk, fraud, stats, segment, channel, scores + DLQ, lake) until Ctrl-C (SPARK_ARGS=...)
	@$(RUN) loans-stream $(SPARK_ARGS)
spark-app-cluster: up ## the same job on a local Spark standalone cluster (master + 2 workers, loopback), spark-submit in client mode with the project's wheel (SPARK_ARGS=...)
	@UV="$(UV)" $(RUN) loans-stack spark-app $(SPARK_ARGS)
spark-cluster-down: .venv/.installed ## stop the local Spark standalone cluster
	@$(RUN) loans-stack spark-down
spark-monitor: up ## model monitoring (loan.monitor) and outcomes to the lake: reads loan.truth, so its own process and principal
	@LOANS_SPARK_QUERIES=outcomes,monitor $(RUN) loans-stream $(SPARK_ARGS)

CONSUMER_ARGS ?=
kafka-consumer-output-%: .venv/.installed ## print one stream readably until Ctrl-C: risk fraud stats segment channel scores monitor dlq (CONSUMER_ARGS="--from-beginning --json ...")
	@$(RUN) loans-consume $* $(CONSUMER_ARGS)

TRAIN_ARGS ?=
train: up ## train baselines + the PyTorch model, log to MLflow, register as `candidate` (TRAIN_ARGS="--source lending-club ...")
	@$(RUN) loans-train $(TRAIN_ARGS)
PROMOTE_ARGS ?=
promote: up ## move `champion` to `candidate` if it beats the champion on the same validation data (PROMOTE_ARGS=--force)
	@$(RUN) loans-promote $(PROMOTE_ARGS)
RETRAIN_ARGS ?=
retrain: up ## train a candidate on the lake (history + live outcomes), promote it only if it beats the champion (RETRAIN_ARGS="--every 6h")
	@$(RUN) loans-retrain $(RETRAIN_ARGS)
serve: up ## prediction API on the champion, hot-swapped when the alias moves (docs at /docs)
	@$(RUN) loans-serve
dashboard: up ## live dashboard over the output topics
	@$(RUN) loans-dashboard

bench-generator: .venv/.installed ## generation speed vs a naive per-row Faker generator (one core)
	@$(RUN) python -m bench.generator
bench-produce: jars ## end-to-end produce throughput to the local broker (acks=all)
	@$(RUN) python -m bench.produce
SOAK_ARGS ?= --minutes 60 --rate 500
soak: jars ## an hour of every stream at 500/s on its own secured stack: lag, p99 and memory must not grow (SOAK_ARGS=...)
	@$(RUN) python -m bench.soak $(SOAK_ARGS)

demo: up ## bring the stack up and run the pipeline for a short while, then summarise
	@$(RUN) loans-demo
