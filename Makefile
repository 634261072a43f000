# mailsec.relay developer and CI entry points. `make demo` and `make test` set up everything
# they need on a fresh Debian 12 machine (run as root: podman is rootful here).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PYTHON ?= python3
LAB := $(ROOT)/tests/lab/lab.sh
COLLECTION_LINK := $(ROOT)/.cache/collections/ansible_collections/mailsec/relay
ACTIVATE := source $(VENV)/bin/activate

.PHONY: help setup host-setup venv collection-link images lab-up lab-down zoo-up zoo-down smoke lint sanity unit integration molecule demo test bench

help:
	@echo "make demo      lab up, then harden + verify the demo fleet (playbooks/lab_demo.yml)"
	@echo "make test      setup, images, then lint, sanity, unit, integration, molecule (all stages, summary table)"
	@echo "make bench     benchmarks vs peers (lab + loopback); writes docs/performance.md; never gates CI"
	@echo "make setup     host packages, venv (.venv), collection link; images: lab images"
	@echo "make lab-up | lab-down | zoo-up | zoo-down | smoke | lint | sanity | unit | integration | molecule"

setup: host-setup venv collection-link

host-setup:
	$(LAB) host-setup

# The venv is rebuilt only when the requirements change (their hash is kept in the venv).
venv:
	@want=$$(cat $(ROOT)/requirements/*.txt | sha256sum | cut -d' ' -f1); \
	stamp=$(VENV)/.requirements.sha256; \
	if [[ -x $(VENV)/bin/python && "$$(cat $$stamp 2>/dev/null)" == "$$want" ]]; then \
	  echo "venv: up to date ($(VENV))"; \
	else \
	  [[ -x $(VENV)/bin/python ]] || $(PYTHON) -m venv $(VENV); \
	  echo "venv: installing requirements/test.txt"; \
	  $(VENV)/bin/python -m pip install -q --disable-pip-version-check -r $(ROOT)/requirements/test.txt; \
	  echo "$$want" > $$stamp; \
	fi

# ansible.cfg looks for collections in .cache/collections: mailsec.relay resolves to this checkout.
collection-link:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@[[ -L $(COLLECTION_LINK) ]] || ln -sfn ../../../.. $(COLLECTION_LINK)
	@test -f $(COLLECTION_LINK)/galaxy.yml
	@echo "collection: $(COLLECTION_LINK) -> $$(readlink $(COLLECTION_LINK))"

images: host-setup
	$(LAB) images

lab-up: host-setup
	$(LAB) up

lab-down:
	$(LAB) down

# The zoo of foreign mail servers (tests/zoo): the verifier's test bed, see docs/verify.md.
zoo-up: host-setup
	$(ROOT)/tests/zoo/zoo.sh up

zoo-down:
	$(ROOT)/tests/zoo/zoo.sh down

smoke: venv collection-link
	$(LAB) smoke
	$(ACTIVATE) && cd $(ROOT) && ansible-playbook -i tests/lab/inventory tests/integration/lab_smoke.yml

lint sanity unit: venv collection-link
	$(ROOT)/tests/run_all.sh $@

integration: venv collection-link images
	$(ROOT)/tests/run_all.sh integration

molecule: venv collection-link images
	$(ROOT)/tests/run_all.sh molecule

demo: setup lab-up
	$(ACTIVATE) && cd $(ROOT) && ansible-playbook -i tests/lab/inventory playbooks/lab_demo.yml

test: setup images
	$(ROOT)/tests/run_all.sh

bench: setup images
	$(ROOT)/bench/run_all.sh
