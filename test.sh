#!/usr/bin/env bash
# Set up (Caffe, OpenBLAS, .venv, and Chromium for the browser tests), then run the test suite.
#
#   ./test.sh                      everything under tests/
#   ./test.sh tests/test_geometry.py -k mirror    extra arguments go to pytest
#
# Test artifacts (training logs, loss plots, evaluation JSON and histograms) land in tests/output/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

bash scripts/setup.sh --browser
mkdir -p tests/output
exec .venv/bin/python -m pytest -q "$@"
