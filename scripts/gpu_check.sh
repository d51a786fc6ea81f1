#!/usr/bin/env bash
# Exercise slimkit's CUDA paths in a few minutes on a GPU machine: the `gpu` test tier (train,
# unstructured and structured pruning, logit distillation, QAT, encoder pruning + embedding
# distillation, profiling) plus a short CLI run (train → prune → distill → profile → compress)
# with --device cuda, compress for size on resnet20 (depth + sparsity), and int8 against eager fp32
# on the host's CPU (benchmarks/int8_layers.py). Logs go to ${OUT:-/tmp}.
#
# Two ways to run it:
#   bash scripts/gpu_check.sh
#       makes .venv-gpu and installs slimkit with pip (needs a package index).
#   SLIMKIT_PYTHON=python3 bash scripts/gpu_check.sh
#       uses an interpreter that already has torch with CUDA (an offline GPU image): slimkit runs
#       from src/, and wheels found in .whl/ (optuna and its needs, say) are installed first.
#       Point SLIMKIT_DATA_DIR at a copy of the Fashion-MNIST IDX files if apt-get can't run.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
start=$(date +%s)
if [ -n "${SLIMKIT_PYTHON:-}" ]; then
    py="$SLIMKIT_PYTHON"
    source scripts/offline_python.sh
else
    python3 -m venv .venv-gpu
    .venv-gpu/bin/pip install -q -c constraints.txt -e '.[dev,onnx,hf]'
    py=.venv-gpu/bin/python
fi
slimkit() { "$py" -m slimkit "$@"; }
bash scripts/ensure_data.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    | tee -a "$out/gpu.txt"
"$py" -m pytest -q -p no:cacheprovider -o addopts="--strict-markers --import-mode=importlib" \
    -m gpu tests/test_gpu.py 2>&1 | tee "$out/gpu_tests.log"
run=$(mktemp -d)
slimkit train --model seed-cnn --epochs 2 --device cuda --out "$run/m.safetensors"
slimkit prune "$run/m.safetensors" --sparsity 0.9 --finetune-epochs 1 --device cuda \
    --out "$run/p.safetensors"
slimkit prune "$run/m.safetensors" --method structured --importance taylor --ratio 0.5 \
    --finetune-epochs 1 --device cuda --out "$run/s.safetensors"
slimkit distill --teacher "$run/m.safetensors" --student seed-cnn-slim --epochs 1 --hint auto \
    --device cuda --out "$run/d.safetensors"
slimkit profile "$run/m.safetensors" "$run/p.safetensors" "$run/s.safetensors" \
    "$run/d.safetensors" --device cuda --json \
    | tee "$out/gpu_profile.json"
# compress with recovery (KD) on the GPU; latency is measured on the CPU backends.
slimkit compress "$run/m.safetensors" --max-drop 2 --goal latency --trials 2 \
    --recover-epochs 1 --margin-se 0 --device cuda --limit-train 4096 --limit-eval 1024 \
    --out "$run/compress" \
    --json | tee "$out/gpu_compress.json"
# the size goal on a residual network: block probes, then sparsity fine-tuned on the GPU (int8
# runs on the CPU and is covered by the seed-cnn run above).
slimkit train --model resnet20 --epochs 1 --device cuda --out "$run/r.safetensors"
slimkit compress "$run/r.safetensors" --max-drop 3 --goal size --trials 1 --no-quantize \
    --recover-epochs 1 --margin-se 0 --device cuda --limit-train 4096 --limit-eval 1024 \
    --out "$run/compress-r20" \
    --json | tee "$out/gpu_compress_r20.json"
# int8 on the host's CPU: whether it has VNNI decides ONNX Runtime's int8 kernel, and so how far
# int8 gets ahead of eager fp32 (docs/benchmarks/quantize.md: 2.7x on resnet20 without VNNI).
# Per layer, one thread; the 1-epoch resnet20 above serves for timing.
OMP_NUM_THREADS=1 "$py" benchmarks/int8_layers.py --artifact "$run/r.safetensors" \
    --out "$out/int8_layers_host.md" > /dev/null
grep -m1 "CPU flags" "$out/int8_layers_host.md" | tee -a "$out/gpu.txt"
grep -m2 "Whole model\|at most" "$out/int8_layers_host.md" | tee -a "$out/gpu.txt"
echo "gpu_check finished in $(($(date +%s) - start)) s" | tee -a "$out/gpu.txt"
