# opscheck: `make demo` runs the morning checks against a local stack; `make test` runs the
# suite's own tests against real services. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The Kubernetes 1.20.2 the tests and the demo run, built once per machine from Debian's source
# package (scripts/build-kubernetes.sh, ~8 min cold); its stamp says the cache is complete.
OPSCHECK_CACHE ?= $(HOME)/.cache/opscheck
K8S_STAMP := $(OPSCHECK_CACHE)/kubernetes-1.20.2/bin/.complete

.PHONY: setup system kubernetes demo test lint clean

setup: system $(STAMP) $(K8S_STAMP)

system:
	@bash scripts/setup-system.sh

kubernetes: $(K8S_STAMP)

$(K8S_STAMP): | system
	@echo "opscheck setup: no Kubernetes build in $(dir $@): building it once (~8 min, progress every 30 s)"
	@OPSCHECK_CACHE='$(OPSCHECK_CACHE)' bash scripts/build-kubernetes.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/python -m opscheck.testbed.demo

test: setup
	$(BIN)/python -m pytest tests_meta -n 2 -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
