# slimkit: `make demo` and `make test` each set up everything they need, on a fresh machine too.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SLIMKIT := $(VENV)/bin/slimkit
STAMP := $(VENV)/.installed
DEMO := runs/demo
# Threads for training and latency; 2 matches the reference machine of the README's numbers.
export OMP_NUM_THREADS ?= 2

.PHONY: setup data demo test test-slow lint format bench coverage clean

setup: $(STAMP) data

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,onnx,hf]'
	@touch $@

data:
	@bash scripts/ensure_data.sh

$(DEMO)/seed-cnn.safetensors: | setup
	$(SLIMKIT) train --model seed-cnn --data fashion-mnist --epochs 12 --out $@ --resume

demo: setup $(DEMO)/seed-cnn.safetensors
	$(SLIMKIT) prune $(DEMO)/seed-cnn.safetensors --data fashion-mnist --method unstructured \
		--importance magnitude --max-drop 0.5 --finetune-epochs 2 --max-trials 5 \
		--out $(DEMO)/seed-cnn-pruned.safetensors
	$(SLIMKIT) profile $(DEMO)/seed-cnn.safetensors $(DEMO)/seed-cnn-pruned.safetensors \
		--data fashion-mnist --device cpu

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts
	$(VENV)/bin/ruff format src tests benchmarks scripts

bench: setup
	$(PY) benchmarks/unstructured.py

coverage: setup
	$(PY) scripts/coverage.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
