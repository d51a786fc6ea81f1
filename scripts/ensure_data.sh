#!/usr/bin/env bash
# Make sure Fashion-MNIST is on disk; install Debian's package when we may, else say how.
set -euo pipefail
dir="${SLIMKIT_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
if [ -f "$dir/train-images-idx3-ubyte.gz" ] || [ -f "$dir/train-images-idx3-ubyte" ]; then
    exit 0
fi
if [ -n "${SLIMKIT_DATA_DIR:-}" ]; then
    echo "SLIMKIT_DATA_DIR=$dir holds no Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...)" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Fashion-MNIST: apt-get install -y dataset-fashion-mnist" >&2
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
    exit 0
fi
echo "Fashion-MNIST is missing. Run:  sudo apt-get install -y dataset-fashion-mnist" >&2
echo "or set SLIMKIT_DATA_DIR to a directory with the four IDX .gz files." >&2
exit 1
