#!/usr/bin/env bash
# One command for a teacher's machine: install everything, then read the bundled sample
# scans and say where the spreadsheet is.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
.venv/bin/exitscan generate --lesson "Writing: describing a character" --class P3B \
  --criterion "I can use adjectives" --out exitscan-sample-passes.pdf
echo "Sample passes to print: $(pwd)/exitscan-sample-passes.pdf"
