# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Reinstall whenever pyproject.toml or the pinned versions change. constraints.txt pins every package to
# the versions the tests passed with (pyproject.toml keeps the compatible ranges): set-up is reproducible
# and pip has nothing to resolve. Refresh it with `make lock` after changing dependencies.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false

.PHONY: setup run test ui ui-check bench deploy worker lint lock clean help

help:
	@echo "make run     set up .venv, then run the whole pipeline on the embedded default profile"
	@echo "make test    set up .venv, then run the test suite"
	@echo "make ui      start the Prefect UI (:4200) and the MLflow UI (:5000) over the home folder, register"
	@echo "             prefect.yaml's deployments there and start a worker for them"
	@echo "make ui-check  open the UIs' key pages in headless Chromium after 'make run': PNGs in .cerebro/ui-check,"
	@echo "             checks of what they show (needs Debian's chromium; ARGS=--install installs it as root)"
	@echo "make bench   print the benchmark figures (benchmarks/*.py)"
	@echo "make deploy  register prefect.yaml's deployments again (needs 'make ui' running; it registers them)"
	@echo "make worker  a foreground process worker for those deployments (make ui already starts one)"
	@echo "make lock    re-pin constraints.txt to what .venv holds (after changing dependencies)"
	@echo "make clean   delete the home folder .cerebro (the next run rebuilds it)"

# pip compiles every installed module to bytecode one file after another (about 2 minutes of the set-up here);
# compileall does the same on every core afterwards. Bytecode matters: where PYTHONDONTWRITEBYTECODE is set,
# nothing is cached at import time and each process would compile what it imports again. A few files written
# for newer Pythons (torch's test helpers) do not compile, as under pip: compileall's exit status is ignored.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --progress-bar off --no-compile -c constraints.txt -e '.[dev]'
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib/python*/site-packages > /dev/null 2>&1 || true
	@rm -f $(VENV)/.installed-* && touch $@

lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' > constraints.txt

setup: $(STAMP)

run: setup
	$(BIN)/cerebro run $(ARGS)
	@$(BIN)/cerebro deployments --if-running

# Two workers, each given whole files (module fixtures are built once): much of the suite waits on servers,
# subprocesses and sockets, so two share two cores well. Files go out in collection order, the longest first
# (tests/conftest.py). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(ARGS)

ui: setup
	$(BIN)/cerebro ui

ui-check: setup
	$(BIN)/python scripts/ui_check.py $(ARGS)

bench: setup
	$(BIN)/python -m pip install --quiet --progress-bar off -c constraints.txt -e '.[dev,bench]'
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

deploy: setup
	$(BIN)/cerebro deployments

worker: setup
	eval "$$($(BIN)/cerebro env)" && export PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:4200/api} && \
	  $(BIN)/prefect worker start --pool cerebro-local

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf .cerebro
