# slimkit: `make demo` and `make test` each set up everything they need, on a fresh machine too.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SLIMKIT := $(VENV)/bin/slimkit
STAMP := $(VENV)/.installed
DEMO := runs/demo
# Threads for training and latency; 2 matches the reference machine of the README's numbers.
export OMP_NUM_THREADS ?= 2
# Passive OpenMP waiting (slimkit sets it too when imported before torch): see src/slimkit/__init__.py.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup data text corpus demo references test test-slow test-distributed lint format bench coverage pipeline-coverage clean

setup: $(STAMP) data

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,onnx,hf,distributed]'
	@touch $@

data:
	@bash scripts/ensure_data.sh

# Text for the sentence encoders (issue #22): Debian documentation packages, then a corpus of
# prose sentences split by document (docs/corpus.md). Not a prerequisite of `make test`.
text:
	@bash scripts/ensure_text.sh

corpus: text $(STAMP)
	$(PY) -c 'from slimkit.data import CorpusConfig, build_corpus; \
		m = build_corpus(CorpusConfig(), "runs/corpus"); print(m.sentences, m.documents, m.checksum)'

# The demo compresses the published reference seed-cnn (references/, `make references` rebuilds
# it), with latency timed on one thread: one inference per core, and steady on a shared machine.
# It recovers with KD as configured (--recover kd), the run the README's results come from;
# without the flag compress first measures KD against cross-entropy (about a minute more here).
demo: setup
	$(SLIMKIT) compress references/seed-cnn.safetensors --data fashion-mnist --max-drop 0.5 \
		--goal latency --trials 6 --recover kd --threads 1 --device cpu --out $(DEMO)/seed-cnn --resume

# The reference models (recipes/references/*.yaml → references/*.safetensors, published with the
# repository): only missing ones are trained, resuming from their checkpoint; then the table
# docs/references.md and references/SHA256SUMS. Hours on 2 cores (OMP_NUM_THREADS=1 to share).
REFERENCES := $(patsubst recipes/references/%.yaml,references/%.safetensors,$(wildcard recipes/references/*.yaml))

references/%.safetensors: | recipes/references/%.yaml setup
	$(SLIMKIT) train --recipe recipes/references/$*.yaml --resume

references: $(REFERENCES) | setup
	$(PY) scripts/references.py

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

# A PostgreSQL server (started by the tests themselves) and several processes.
test-distributed: setup
	@bash scripts/ensure_postgres.sh
	$(PY) -m pytest -q -m distributed

lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache src tests benchmarks scripts
	$(VENV)/bin/ruff format --no-cache --check src tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict src/slimkit/search src/slimkit/prune src/slimkit/quantize

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts
	$(VENV)/bin/ruff format src tests benchmarks scripts

bench: setup
	$(PY) benchmarks/unstructured.py

coverage: setup
	$(PY) scripts/coverage.py

# Every torchvision classifier and ~75 timm models through prune → int8 → ONNX Runtime (hours).
pipeline-coverage: setup
	$(PY) scripts/pipeline_coverage.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
