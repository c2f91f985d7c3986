# replayrec — developer entry points. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the development install: core and every plugin with their training extras (the serving profile is the
# packages without extras: `replayrec bench serving-profile`, tests/test_serving_profile.py)
PACKAGES := core[train,postgres,testing,broker,stream] $(sort $(patsubst %/pyproject.toml,%[train],$(wildcard plugins/*/pyproject.toml))) \
	serving[testing]
PYTEST_ARGS ?=

.PHONY: setup demo test lint typecheck pytest clean

$(STAMP): requirements/lock.txt core/pyproject.toml $(wildcard plugins/*/pyproject.toml) serving/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/lock.txt \
		-r requirements/lock.txt $(foreach p,$(PACKAGES),-e '$(p)')
	touch $(STAMP)

setup: $(STAMP)

## main job: prepare the data (real Amazon Books when present, else the synthetic world), report the baselines,
## train LightGCN → DIN → RankNet with the quick profile (reusing newer models if there are any), print the
## per-stage table, then take the LightGCN model through the promotion gates to lightgcn@prod (exit 3 = a gate
## stopped it, which is a result, not a failure) and list the registry; finally start the embedded Kafka broker
## and the Spark streaming job (on a fresh online store), replay the dataset's history onto the events topic at
## max speed, show the replay clock and the topics, wait for the stream to catch up, show the store and the most
## active user's online profile, and stop the job and the broker again (whatever happened)
demo: setup
	$(BIN)/replayrec data prepare
	$(BIN)/replayrec report baselines
	$(BIN)/replayrec report stages --train-config configs/demo.yaml
	$(BIN)/replayrec pipeline run lightgcn --model lightgcn@latest --gates configs/gates.yaml || [ $$? -eq 3 ]
	$(BIN)/replayrec registry list
	$(BIN)/replayrec stream stop; $(BIN)/replayrec bus stop; $(BIN)/replayrec bus start --detach && { \
		$(BIN)/replayrec stream reset && $(BIN)/replayrec stream run --detach && \
		$(BIN)/replayrec replay start --speed max --no-metrics && \
		$(BIN)/replayrec replay status && $(BIN)/replayrec bus status && \
		$(BIN)/replayrec stream status --wait 600 && $(BIN)/replayrec stream profile; \
		rc=$$?; $(BIN)/replayrec stream stop; $(BIN)/replayrec bus stop; exit $$rc; }

## every check CI runs: lint (ruff, the import layering), strict types on core and the plugins, the tests
test: lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .replayrec .pytest_cache .mypy_cache .ruff_cache
