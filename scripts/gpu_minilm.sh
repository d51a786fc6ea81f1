#!/usr/bin/env bash
# Distil all-MiniLM-L6-v2 students on a GPU machine with the CLI itself
# (slimkit compress --task sentence-embedding --device cuda), and pack the chosen student as its
# difference from the teacher for the trip back (scripts/delta_pack.py). Its agreement and speed
# are then measured on the target CPU, against the peers:
#   python scripts/delta_pack.py unpack TEACHER_DIR CHUNKS --into runs/gpu-students
#   python benchmarks/minilm.py --students runs/gpu-students/<label> --threads 1
#
# Environment: TEACHER (model directory; fp16 weights are widened to fp32 first), CORPUS (a
# corpus folder built by `make corpus`), CANDIDATES (layers:heads:ffn triples, default
# 0:0.34:0.34), STEPS (distillation steps per candidate, default 20000), MINUTES (a cap per
# candidate), PRECISION (fp32 or bf16, default bf16), SLIMKIT_PYTHON (default python3), OUT
# (where the run, the chunks and the log go).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${SLIMKIT_PYTHON:-python3}"
out="${OUT:-/tmp/gpu_minilm}"
mkdir -p "$out"
source scripts/offline_python.sh
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
teacher=/tmp/teacher-fp32
rm -rf "$teacher" && cp -r "${TEACHER:?set TEACHER to the model directory}" "$teacher"
"$py" - "$teacher/model.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
path = sys.argv[1]
tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}
save_file(tensors, path, metadata={"format": "pt"})
PY
run="$out/run"
resume=()
[ -f "$run/state.json" ] && resume=(--resume)
"$py" -m slimkit compress "$teacher" --task sentence-embedding --data "text:${CORPUS:?set CORPUS}" \
    --device cuda --candidates "${CANDIDATES:-0:0.34:0.34}" --distill-steps "${STEPS:-20000}" \
    ${MINUTES:+--max-seconds "${MINUTES}m"} --distill-precision "${PRECISION:-bf16}" \
    --min-cosine 0.97 --min-overlap 0.8 --backend onnxruntime --no-quantize --quiet \
    --out "$run" "${resume[@]}" 2>&1 | grep -v -e "Loading weights" -e "Writing model" |
    tee -a "$out/gpu_minilm.log"
label=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["chosen"]["label"])' "$run/summary.json")
if [ "$label" != unpruned ]; then
    "$py" scripts/delta_pack.py pack "$teacher" "$run/model" --out "$out/$label" | tee -a "$out/gpu_minilm.log"
fi
