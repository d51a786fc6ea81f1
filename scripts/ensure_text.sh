#!/usr/bin/env bash
# Make sure the documentation the text-corpus builder reads is installed (slimkit.data.build_corpus):
# Debian's fortunes, the Debian Reference and Python's documentation (about 77 MB installed; man
# pages and /usr/share/doc are read as they are). Install with apt when we may, else say how.
set -euo pipefail
packages=(fortunes debian-reference-en python3.11-doc)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing text sources: apt-get install -y ${missing[*]}" >&2
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
    exit 0
fi
echo "Text sources are missing. Run:  sudo apt-get install -y ${missing[*]}" >&2
echo "or build the corpus from a folder of text files: CorpusConfig(sources=('folder:DIR',))." >&2
exit 1
