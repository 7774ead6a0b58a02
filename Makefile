# raftmon: every target creates .venv when missing and installs the project into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# command:debian-package pairs for the real tools tests and the lab use
DEB_TOOLS := promtool:prometheus prometheus:prometheus amtool:prometheus-alertmanager \
             prometheus-alertmanager:prometheus-alertmanager etcd:etcd-server etcdctl:etcd-client jsonnetfmt:jsonnet \
             curl:curl node:nodejs npm:npm
PYTEST_ARGS ?=

.PHONY: venv tools node demo test test-long lint bench mixin dashboards clean

venv: $(STAMP)

# The gRPC stubs (etcdproto/gen, not committed) are generated from our .proto files here.
$(STAMP): pyproject.toml $(wildcard etcdproto/proto/*/*.proto)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m etcdproto.generate >/dev/null
	@touch $(STAMP)

# Installs Debian's prometheus, alertmanager, etcd-server, etcd-client and jsonnet when missing.
# A failure is reported, not fatal: tests that need a missing tool fail under CI=true.
tools:
	@missing=""; for pair in $(DEB_TOOLS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  ( $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing ) \
	    || echo "WARNING: could not install$$missing; features needing them are unavailable"; \
	fi

# package.json's npm tools (@grafana/schema + typescript: the Grafana schema test) into
# node_modules/. Without npm it warns; that test then fails under CI=true.
NODE_STAMP := node_modules/.package-lock.json
node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error; \
	else echo "WARNING: npm not found (make tools installs it); the Grafana schema test needs it"; fi

demo: venv tools
	$(VENV)/bin/raftmon demo

test: venv tools node
	$(PY) -m pytest -m "not slow and not bench" $(PYTEST_ARGS)

test-long: venv tools
	$(PY) -m pytest -m "slow" $(PYTEST_ARGS)

lint: venv tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	jsonnetfmt --test -n 2 --max-blank-lines 2 --string-style s --comment-style s $$(find alerts -name '*.libsonnet' -o -name '*.jsonnet')
	promtool check rules alerts/out/*.yaml alerts/out/lab/*.yaml

bench: venv tools
	$(PY) -m pytest -m bench -s -p no:cacheprovider $(PYTEST_ARGS)

mixin: venv
	$(VENV)/bin/raftmon mixin

dashboards: venv mixin
	$(VENV)/bin/raftmon dashboards

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache node_modules
