#!/usr/bin/env bash
# The whole test suite, installing its own test dependencies first.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh --test
exec .venv/bin/python -m pytest -q "$@"
