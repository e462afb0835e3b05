#!/usr/bin/env bash
# One command for a teacher's machine: install everything exitscan needs, then read the
# bundled sample scans (sample_scans/) and say where the results are.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
echo "Reading the sample scans in sample_scans/ ..."
.venv/bin/exitscan process sample_scans --out exitscan-results
echo
echo "Done. Open the spreadsheet: $(pwd)/exitscan-results/results.xlsx"
echo "To read your own scans:  .venv/bin/exitscan process FOLDER --out RESULTS"
echo "To print passes:         .venv/bin/exitscan generate --roster class.csv --out passes.pdf"
