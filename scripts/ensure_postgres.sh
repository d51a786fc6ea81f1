#!/usr/bin/env bash
# The distributed tests start their own PostgreSQL server; make sure its binaries exist.
set -euo pipefail
if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL: apt-get install -y postgresql" >&2
    apt-get install -y -qq postgresql >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
    exit 0
fi
echo "PostgreSQL is missing. Run:  sudo apt-get install -y postgresql" >&2
exit 1
