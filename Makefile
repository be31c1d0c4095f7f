# robustlit: the two commands that matter are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench compare-calibration digits-table mixed-demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# TRADES on the embedded 8x8 digits (no download, CPU): trains, attacks with PGD-50, tests the best checkpoint.
demo: $(STAMP)
	$(BIN)/robustlit fit --config configs/digits/trades.yaml

test: $(STAMP)
	$(BIN)/ruff check robustlit tests benchmarks examples
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check robustlit tests benchmarks examples
	$(BIN)/ruff format --check robustlit tests benchmarks examples

# Speed ratios measured side by side in one run (see benchmarks/README.md).
bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Robustness and calibration of every method on digits, 3 seeds, mean ± std and paired tests against PGD-AT
# (docs/calibration.md; about 2 h on a shared 2-core machine). SEEDS=5 for more seeds.
SEEDS ?= 3
compare-calibration: $(STAMP)
	$(BIN)/python examples/compare_calibration.py --seeds $(SEEDS)

# Issue 13's digits table: the same comparison with AutoAttack per model as well (about 6 h), written to JSON.
digits-table: $(STAMP)
	mkdir -p runs
	$(BIN)/python examples/compare_calibration.py --seeds $(SEEDS) --autoattack --json runs/digits_table.json

clean:
	rm -rf runs lightning_logs .pytest_cache
