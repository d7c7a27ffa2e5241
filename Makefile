# penguinmails.dbops — developer entry points.
#   make rehearse   bring the rehearsal lab up and run the main job against it
#   make test       every quality gate: ruff, ansible-lint, sanity, unit,
#                   integration, molecule
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
BUILD := .build
COLLECTION_LINK := $(BUILD)/collections/ansible_collections/penguinmails/dbops

export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)/$(BUILD)/collections
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(BUILD)/collections

LAB_INVENTORY ?= inventories/lab
# LAB=hosts: the production-shaped topology (tests/labhosts.py, inventories/lab-hosts, docs/lab.md):
# every server in its own network namespace on its own 198.18.0.x address, reached over SSH. Root only.
LAB ?=
# LAB_ALERTS=1: the lab also gets the live alert pipeline (tests/alertlab.py, docs/lab.md):
# postgres-exporter, Prometheus, Alertmanager and ansible-rulebook on 127.0.0.1 from this port
# base; LAB_AUTO_FAILOVER=1 lets an outage alert run the failover (eda_auto_failover).
LAB_ALERTS ?=
LAB_ALERTS_PORT_BASE ?= 9180
LAB_ALERTS_ROOT ?= /var/tmp/penguinmails-dbops-lab-alerts
LAB_AUTO_FAILOVER ?=
PYTEST_ARGS ?=
# make test runs two lanes side by side (tools/run-gates.sh): the static gates then the Molecule
# scenarios, and sanity then the integration tests then the scenarios that need the `hosts` lab
# (one per machine: never at the same time as test_hosts_outage.py). GATES_SERIAL=1: one at a time.
TEST_LANES ?= "ruff ansible-lint unit molecule" "sanity integration molecule-hosts"
# Molecule scenarios that bring up the `hosts` lab: run by molecule-hosts, excluded from molecule.
MOLECULE_HOSTS_SCENARIOS ?= partition

.PHONY: help venv system-packages link lint ruff ansible-lint sanity unit \
        integration molecule molecule-hosts test rehearse lab-up lab-down lab-status build bench clean

help:
	@echo "make rehearse   bring up the lab and rehearse against it"
	@echo "make test       ruff, ansible-lint, sanity, unit, integration, molecule"
	@echo "make lab-up | lab-down | lab-status | bench | build   (LAB=hosts: the SSH-reached hosts topology)"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@# (Re)create the venv unless it has a working pip: an interrupted creation leaves a python without pip.
	$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && python3 -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

system-packages:
	@tools/install-system-packages.sh

# The collection under test, and awx.awx (for playbooks/controller_setup.yml) beside it.
link:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn $(CURDIR) $(COLLECTION_LINK)
	@PYTHON=$(BIN)/python tools/install-awx-collection.sh $(BUILD)/collections

ruff: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ansible-lint: venv link
	$(BIN)/ansible-lint --profile production

lint: ruff ansible-lint

sanity: venv system-packages
	tools/sanity.sh

unit: venv link
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

integration: venv link system-packages
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

# Molecule's collection mode: run from the collection root (galaxy.yml), scenarios
# in extensions/molecule/, shared settings in extensions/molecule/config.yml.
molecule: venv link system-packages
	$(BIN)/molecule test --all $(foreach scenario,$(MOLECULE_HOSTS_SCENARIOS),--exclude $(scenario))

molecule-hosts: venv link system-packages
	@set -e; for scenario in $(MOLECULE_HOSTS_SCENARIOS); do $(BIN)/molecule test -s $$scenario; done

# Every gate runs and is timed; make test fails when any gate failed.
test: venv link system-packages
	@MAKE="$(MAKE)" tools/run-gates.sh $(TEST_LANES)

ifeq ($(LAB),hosts)
lab-up: venv link system-packages
	$(BIN)/python tests/labhosts.py up

lab-down: venv link
	$(BIN)/python tests/labhosts.py down

lab-status: venv link
	$(BIN)/python tests/labhosts.py status
else
lab-up: venv link system-packages
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab.yml -e lab_state=present
ifeq ($(LAB_ALERTS),1)
	$(BIN)/python tests/alertlab.py up --inventory $(LAB_INVENTORY)/hosts.yml --root $(LAB_ALERTS_ROOT) \
		--port-base $(LAB_ALERTS_PORT_BASE) $(if $(filter 1,$(LAB_AUTO_FAILOVER)),--auto-failover)
endif

lab-down: venv link
	$(BIN)/python tests/alertlab.py down --inventory $(LAB_INVENTORY)/hosts.yml --root $(LAB_ALERTS_ROOT)
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab.yml -e lab_state=absent

lab-status: venv link
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab_status.yml
endif

# The main job on the built-in lab: bring it up, kill the oltp primary, run the outage
# playbook, rejoin the old primary, show the lab.
rehearse: lab-up lab-status
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/rehearse_outage.yml
	$(BIN)/ansible-playbook -i $(LAB_INVENTORY) playbooks/lab_status.yml

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD)/dist

bench: venv link system-packages
	$(BIN)/python tools/bench.py

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache
