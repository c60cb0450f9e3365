PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install lint test demo bench clean

$(BIN)/tvr: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,app,milvus]"
	touch $(BIN)/tvr

install: $(BIN)/tvr

lint: install
	$(BIN)/ruff check src tests benchmarks

test: install lint
	@# transformers' common tests ship in its sdist only: fetched once into $(VENV)/transformers-tests (a registry
	@# download like every dependency); without them tests/transformers_common skips with the reason
	$(BIN)/python tests/transformers_common/fetch_transformers_tests.py || echo "could not fetch transformers' tests"
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests

demo: install
	$(BIN)/tvr demo --output demo_output

bench: install
	$(BIN)/python benchmarks/bench_sampling.py

clean:
	rm -rf $(VENV) demo_output
