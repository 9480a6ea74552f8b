#!/usr/bin/env bash
# Set up (Caffe, OpenBLAS, .venv, Chromium for the browser tests and the optional Ray extra for
# the cluster test), then run the test suite.
#
#   ./test.sh                      everything under tests/
#   ./test.sh tests/test_geometry.py -k mirror    extra arguments go to pytest
#
# Test artifacts (training logs, loss plots, evaluation JSON and histograms) land in tests/output/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

bash scripts/setup.sh --browser --cluster
# The extra is installed: its tests must run here, never skip (tests/test_cluster.py).
export DEEP_LANDMARK_CLUSTER_EXTRA=1
mkdir -p tests/output
exec .venv/bin/python -m pytest -q "$@"
