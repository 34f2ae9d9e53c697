# hashmatch developer commands. On a fresh machine (python3.11+ with pip and venv):
#
#   make serve    # set up .venv with the [server] extra, run the service on 127.0.0.1:50051
#   make test     # set up .venv with the [dev] extra (+ buf if npm is there), run pytest
#
# Other targets: make protos, make lint-protos, make buf, make clean, make help.
# Override on the command line, e.g. make test PYTEST_ARGS='-k lists -x', make serve LISTEN=0.0.0.0:50051.

PYTHON      ?= python3
VENV        ?= .venv
LISTEN      ?= 127.0.0.1:50051
DATA_DIR    ?= ./data
PYTEST_ARGS ?=
# buf (protobuf linter) comes from the npm registry as @bufbuild/buf; pinned so lint is repeatable.
BUF_VERSION ?= 1.75.0
BUF_DIR     := .tools/buf
BUF         := $(BUF_DIR)/node_modules/.bin/buf

BIN := $(VENV)/bin
PY  := $(BIN)/python
PIP := $(PY) -m pip --disable-pip-version-check

# Every recipe line runs under bash with errexit, nounset and pipefail.
SHELL         := /bin/bash
.SHELLFLAGS   := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

.PHONY: help serve test protos lint-protos buf buf-optional venv clean

help:
	@echo 'make serve        run the service: $(BIN)/hashmatch serve --listen $(LISTEN) --data-dir $(DATA_DIR)'
	@echo 'make test         run the tests: $(PY) -m pytest $$PYTEST_ARGS (installs buf with npm when npm is there)'
	@echo 'make protos       regenerate the committed stubs in protos/hashmatch/v1 (scripts/gen_protos.py)'
	@echo 'make lint-protos  buf lint on protos/ (installs buf $(BUF_VERSION) into $(BUF_DIR) with npm)'
	@echo 'make clean        remove $(VENV), $(BUF_DIR) and caches (not $(DATA_DIR))'

# ---- Python environment --------------------------------------------------------------
# $(VENV) is made once; each extra is (re)installed when its stamp is missing or older than
# pyproject.toml. The stamps live inside $(VENV), so deleting $(VENV) resets everything.

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hashmatch needs Python 3.11+, but $(PYTHON) is " + sys.version.split()[0] + "; try: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-%: pyproject.toml | $(PY)
	$(PIP) install --progress-bar off -e '.[$*]'
	@touch $@

venv: $(VENV)/.stamp-dev

# ---- The two everyday commands ---------------------------------------------------------

serve: $(VENV)/.stamp-server
	mkdir -p -m 700 $(DATA_DIR)
	exec $(BIN)/hashmatch serve --listen $(LISTEN) --data-dir $(DATA_DIR)

test: $(VENV)/.stamp-dev buf-optional
	$(PY) -m pytest $(PYTEST_ARGS)

# ---- Protos ----------------------------------------------------------------------------

protos: $(VENV)/.stamp-dev
	$(PY) scripts/gen_protos.py

lint-protos: buf
	cd protos && ../$(BUF) lint

# buf: install the pinned version unless it is already there (npm required).
buf:
	@if [[ "$$($(BUF) --version 2>/dev/null || true)" == "$(BUF_VERSION)" ]]; then exit 0; fi; \
	if ! command -v npm >/dev/null 2>&1; then \
		echo "error: buf comes from the npm registry (@bufbuild/buf) and npm is not installed" >&2; exit 1; \
	fi; \
	echo "installing @bufbuild/buf@$(BUF_VERSION) into $(BUF_DIR)"; \
	npm install --prefix $(BUF_DIR) --no-audit --no-fund --loglevel=error '@bufbuild/buf@$(BUF_VERSION)'; \
	$(BUF) --version

# For make test: install buf when npm is there; otherwise the buf lint test skips and says why.
buf-optional:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory buf || echo "warning: could not install buf; the buf lint test will be skipped" >&2; \
	else \
		echo "note: npm not found, so buf is not installed; the buf lint test will be skipped" >&2; \
	fi

clean:
	rm -rf $(VENV) $(BUF_DIR) .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
