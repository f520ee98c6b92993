# icpflow — the two commands are `make run` and `make test`; see README.md.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

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
# Chinese fonts, so the dashboard's screenshots show 粤ICP备… rather than boxes.
$(CHROMIUM) $(CJK_FONT):
	@command -v apt-get >/dev/null || { echo "the dashboard test needs Chromium at $(CHROMIUM) and CJK fonts (Debian: apt-get install chromium fonts-noto-cjk)"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null

test: $(STAMP) $(CHROMIUM) $(CJK_FONT)
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
