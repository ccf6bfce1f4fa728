# chokepoint — the two commands a user needs: `make test` and `make demo`.
# Both do all set-up on a fresh machine: the .venv with the four distributions
# installed editable (with test extras), and the real services (apt + Maven Central).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chokepoint-installed
NATIVE_SO := collector/src/chokepoint/collector/_native_ingest.abi3.so
CARGO ?= $(or $(shell command -v cargo 2>/dev/null),$(HOME)/.cargo/bin/cargo)
INSTALL_INPUTS := constraints.txt semconv/pyproject.toml instrument/pyproject.toml collector/pyproject.toml dashboards/pyproject.toml examples/pyproject.toml
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: test demo install native provision lint format unit integration scenario bench clean accuracy matrix matrix-ci install-check

test: provision install lint install-check matrix-ci
	@echo "== pytest (unit + integration + scenario)"
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests — treating as failure"; exit 1; fi; \
	  exit $$rc

# The demo needs only PostgreSQL and Kafka; where they cannot be provisioned (no apt, no
# Java, no network) it says so and runs on SQLite / without Kafka, clearly labelled.
demo: install
	@echo "== services for the demo (PostgreSQL, Kafka)"
	@scripts/provision.sh postgres || echo "make demo: PostgreSQL could not be provisioned (above): the demo falls back to SQLite"
	@scripts/provision.sh kafka || echo "make demo: Kafka could not be provisioned (above): the demo runs without Kafka"
	$(BIN)/python examples/demo.py $(DEMO_ARGS)

install: $(STAMP) $(NATIVE_SO)

# The native span ingest core (collector/native, Rust through PyO3, crates from crates.io);
# without cargo the collector ingests spans with the pure-Python path (and says so on /health).
native: $(NATIVE_SO)

$(NATIVE_SO): collector/native/Cargo.toml collector/native/Cargo.lock $(wildcard collector/native/src/*.rs) | $(STAMP)
	@echo "== native ingest core (cargo build --release, collector/native)"
	@if [ -x "$(CARGO)" ]; then \
	  PYO3_PYTHON=$(abspath $(BIN)/python) "$(CARGO)" build --release --locked --quiet --manifest-path collector/native/Cargo.toml && \
	  cp collector/native/target/release/lib_native_ingest.so $@.tmp && mv -f $@.tmp $@; \
	else echo "make native: no cargo (PATH, ~/.cargo/bin): spans are ingested by the pure-Python path"; fi

$(STAMP): $(INSTALL_INPUTS)
	@echo "== python packages into $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt \
	  -e ./semconv -e './instrument[test]' -e './collector[test]' -e './dashboards[test]' -e './examples'
	@touch $@

# chokepoint-instrument installs where users are: fresh venvs, no constraints file (the wheel
# alone, next to an app's own pins), and the agent's unit tests at the oldest OpenTelemetry set.
install-check: install
	@echo "== install check (scripts/check_install.py)"
	@$(BIN)/python scripts/check_install.py

provision:
	@echo "== services (PostgreSQL, MariaDB, Redis, Prometheus, Chromium, Kafka)"
	@scripts/provision.sh

lint: install
	@echo "== ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: install
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

integration: provision install
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

scenario: provision install
	$(BIN)/python -m pytest -m scenario $(PYTEST_ARGS)

# The library matrix (scripts/matrix.py, tests/matrix/versions.toml): each instrumented
# library at several releases, each in its own cached venv (~/.cache/chokepoint/matrix).
matrix: provision install
	$(BIN)/python scripts/matrix.py --write docs/MATRIX.md

matrix-ci: provision install
	$(BIN)/python scripts/matrix.py --ci

# The whole zoo (tests/zoo: small apps under chokepoint-instrument, each with its own ground truth);
# writes docs/ACCURACY.md even when apps miss (the misses are what it reports).
accuracy: provision install
	@echo "== the zoo, every app (tests/zoo) -> docs/ACCURACY.md"
	-@CHOKEPOINT_ZOO=all $(BIN)/python -m pytest tests/zoo -m zoo -q $(PYTEST_ARGS)
	@grep -m1 "Top-1" docs/ACCURACY.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
