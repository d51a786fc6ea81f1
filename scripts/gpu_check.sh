#!/usr/bin/env bash
# Exercise slimkit's CUDA paths in a few minutes on a GPU machine: the `gpu` test tier plus a
# short CLI run (train → prune → profile → compress) with --device cuda. Writes logs to ${OUT:-/tmp}.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q -c constraints.txt -e '.[dev,onnx,hf]'
bash scripts/ensure_data.sh
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
.venv-gpu/bin/python -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log"
run=$(mktemp -d)
.venv-gpu/bin/slimkit train --model seed-cnn --epochs 2 --device cuda --out "$run/m.safetensors"
.venv-gpu/bin/slimkit prune "$run/m.safetensors" --sparsity 0.9 --finetune-epochs 1 --device cuda \
    --out "$run/p.safetensors"
.venv-gpu/bin/slimkit profile "$run/m.safetensors" "$run/p.safetensors" --device cuda --json \
    | tee "$out/gpu_profile.json"
# compress with recovery (KD) on the GPU; latency is measured on the CPU backends.
.venv-gpu/bin/slimkit compress "$run/m.safetensors" --max-drop 2 --goal latency --trials 2 \
    --recover-epochs 1 --device cuda --limit-train 4096 --limit-eval 1024 --out "$run/compress" \
    --json | tee "$out/gpu_compress.json"
