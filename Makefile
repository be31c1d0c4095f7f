# robustlit: the two commands that matter are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench compare-calibration digits-table mixed-tradeoff mnist-table mnist-calibration mnist-reweighting mnist-smoothing clean

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
# (docs/calibration.md; about 35 min on one CPU thread). SEEDS=5 for more seeds.
SEEDS ?= 3
compare-calibration: $(STAMP)
	$(BIN)/python examples/compare_calibration.py --seeds $(SEEDS)

# The digits table of every method: the same comparison plus AutoAttack on the clean test set (about 40 min on one
# CPU thread), written to runs/digits_table.json after every (seed, method); rerunning resumes from it.
digits-table: $(STAMP)
	mkdir -p runs
	$(BIN)/python examples/compare_calibration.py --seeds $(SEEDS) --autoattack --json runs/digits_table.json

# Standard base, PGD-AT base, learned mixture and MixedNUTS on the trade-off digits (docs/tradeoff.md),
# one table on the test split over 3 seeds (SEEDS=N): clean, AutoAttack, APGD-50, adaptive APGD-CE / APGD-T, per-example worst case.
mixed-tradeoff: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python examples/mixed_digits.py --benchmark tradeoff --seeds $(SEEDS)

# The MNIST table of fast adversarial training (docs/mnist_fast_at.md): FGSM-RS, N-FGSM and PGD-AT (PGD-10) over
# 3 seeds (SEEDS=N), PGD-50 x 10 restarts on all 10,000 test images, AutoAttack, worst case and audit on the first
# 1,000. MNIST comes from the package registry (docs/mnist.md). Written to runs/mnist_table.json after every
# (seed, method); rerunning resumes (trainings from last.ckpt, evaluations batch by batch). JOBS=2 runs two (seed,
# method) pairs at once, one process each. About 1 h per
# (seed, method) on one CPU thread; a GPU job for the whole table.
JOBS ?= 1
mnist-table: $(STAMP)
	mkdir -p runs
	OMP_NUM_THREADS=1 $(BIN)/python examples/mnist_fast_at_table.py --seeds $(SEEDS) --jobs $(JOBS) --json runs/mnist_table.json

# The seed papers' effects on MNIST (the data comes through the package registry, docs/mnist.md), 3 seeds (SEEDS=N),
# one thread each; every target resumes from its JSON in runs/ (rewritten after every (seed, method)).
# Calibration under shift: Standard, label smoothing, temperature scaling, AR-AdaLS (docs/calibration_mnist.md).
mnist-calibration: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python examples/mnist_calibration.py --seeds $(SEEDS)

# Worst-class robustness: FGSM-RS and the same base with DRO (DONE), GAIRAT, MAIL weights (docs/reweighting_mnist.md).
mnist-reweighting: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python examples/mnist_reweighting.py --seeds $(SEEDS)

# Randomized smoothing, constant sigma 0.25 / 0.5 against Súkeník et al.'s sigma(x) (docs/smoothing_mnist.md).
mnist-smoothing: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python examples/mnist_smoothing.py --seeds $(SEEDS)

clean:
	rm -rf runs lightning_logs .pytest_cache
