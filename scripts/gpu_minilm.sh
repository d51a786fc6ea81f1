#!/usr/bin/env bash
# Prune and distil all-MiniLM-L6-v2 students on a GPU machine (benchmarks/minilm.py --train-only
# --device cuda), and pack each one as its difference from the teacher for the trip back
# (scripts/delta_pack.py). Latency and the doc are then measured on the target CPU:
#   python scripts/delta_pack.py unpack TEACHER_DIR CHUNKS --into runs/transformers
#   OMP_NUM_THREADS=1 python benchmarks/minilm.py --threads 1 --recipes ...
#
# Environment: TEACHER (model directory; fp16 weights are widened to fp32 first), FORTUNES (a
# copy of /usr/share/games/fortunes), RECIPES, MINUTES (distillation minutes per recipe),
# TEXTS (training sentences, 0: all), DEVICE (default cuda), BATCH, SLIMKIT_PYTHON (default
# python3), OUT (where the chunks and the log go).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${SLIMKIT_PYTHON:-python3}"
out="${OUT:-/tmp/gpu_minilm}"
mkdir -p "$out"
source scripts/offline_python.sh
export PYTHONUNBUFFERED=1
teacher=/tmp/teacher-fp32
rm -rf "$teacher" && cp -r "${TEACHER:?set TEACHER to the model directory}" "$teacher"
"$py" - "$teacher/model.safetensors" <<'EOF'
import sys
from safetensors.torch import load_file, save_file
path = sys.argv[1]
tensors = {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}
save_file(tensors, path, metadata={"format": "pt"})
EOF
students=/tmp/students
for recipe in ${RECIPES:-f75 h50-f50}; do
    "$py" benchmarks/minilm.py --model "$teacher" --text "fortunes:${FORTUNES:?}" --train-only \
        --device "${DEVICE:-cuda}" --recipes "$recipe" --train-texts "${TEXTS:-0}" --minutes "${MINUTES:-3}" \
        --batch-size "${BATCH:-64}" --freeze-embeddings --out "$students" 2>&1 |
        grep -v -e "Loading weights" -e "Writing model" | tee -a "$out/gpu_minilm.log"
    "$py" scripts/delta_pack.py pack "$teacher" "$students/$recipe" --out "$out/$recipe" |
        tee -a "$out/gpu_minilm.log"
done
