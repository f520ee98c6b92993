# icpflow — the two commands are `make run` and `make test`; see README.md.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: install test lint fmt run demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the project's metadata changes.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The dashboard test drives Debian's headless Chromium (never a downloaded browser).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "the dashboard test needs Chromium at $(CHROMIUM) (Debian: apt-get install chromium)"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null

test: $(STAMP) $(CHROMIUM)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# The whole local stack (Temporal dev server, simulators, worker, API) and a demo order; Ctrl-C stops it all.
run: $(STAMP)
	$(BIN)/icpflow dev up

# The same, exiting 0 once the demo order is approved (non-zero on failure); CI runs it.
demo: $(STAMP)
	$(BIN)/icpflow dev up --exit-after-demo

# Benchmarks against a no-op baseline on the same server; results in bench/results/ (bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .data .mypy_cache .ruff_cache *.egg-info
