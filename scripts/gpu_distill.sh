#!/usr/bin/env bash
# Run benchmarks/distill.py configurations side by side on one GPU: one process per
# (configuration, seed), each in its own work directory, every finished run saved at once (so a
# time cap keeps what finished). The per-seed results are merged into one distill.json per
# configuration under runs/gpu-distill/<tag>/ and packed into $OUT/gpu-distill.tar.gz; render the
# doc here with the same distill.py arguments and --workdir runs/gpu-distill/<tag> (the finished
# runs are skipped, the table is written).
#
#   SLIMKIT_PYTHON=python3 SLIMKIT_DATA_DIR=/tmp/fashion-mnist MINUTES=7 \
#       bash scripts/gpu_distill.sh "self10|self|ce,kd:T=2:alpha=0.5|--target-macs 0.25 --epochs 10"
#
# Each argument is TAG|PAIR|ARMS|EXTRA distill.py options; SEEDS (default "0 1 2") are run in
# parallel on DEVICE (default cuda). Without SLIMKIT_PYTHON, .venv/bin/python is used.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
py="${SLIMKIT_PYTHON:-.venv/bin/python}"
[ -n "${SLIMKIT_PYTHON:-}" ] && source scripts/offline_python.sh
seeds="${SEEDS:-0 1 2}"
minutes="${MINUTES:-30}"
root=runs/gpu-distill
mkdir -p "$root"
pids=()
for spec in "$@"; do
    IFS='|' read -r tag pair arms extra <<<"$spec"
    for seed in $seeds; do
        work="$root/$tag-s$seed"
        # shellcheck disable=SC2086  # $extra holds several options
        OMP_NUM_THREADS=1 timeout "${minutes}m" "$py" benchmarks/distill.py --pairs "$pair" \
            --arms "$arms" --seeds "$seed" --device "${DEVICE:-cuda}" --workdir "$work" --no-render $extra \
            >"$work.log" 2>&1 &
        pids+=($!)
    done
done
for pid in "${pids[@]}"; do wait "$pid" || true; done
"$py" - "$root" "$@" <<'EOF'
import json, sys
from pathlib import Path

root = Path(sys.argv[1])
for spec in sys.argv[2:]:
    tag = spec.split("|")[0]
    merged = {}
    for part in sorted(root.glob(f"{tag}-s*/distill.json")):
        merged.update(json.loads(part.read_text()))
    (root / tag).mkdir(exist_ok=True)
    (root / tag / "distill.json").write_text(json.dumps(merged, indent=1))
    runs = [k for k in merged if "/seed" in k]
    print(f"{tag}: {len(runs)} runs finished")
EOF
tar czf "$out/gpu-distill.tar.gz" "$root"
