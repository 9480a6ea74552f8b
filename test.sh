#!/usr/bin/env bash
# Set up (Caffe, OpenBLAS, .venv, Chromium for the browser tests and the optional Ray extra for
# the cluster test), then run the test suite.
#
#   ./test.sh                      everything under tests/
#   ./test.sh --quick              the fast tier for the edit-test loop: the light set-up
#                                  (scripts/setup.sh --inference: no Caffe build), and every test
#                                  not marked caffe, browser, cluster or slow (pytest.ini)
#   ./test.sh tests/test_geometry.py -k mirror    extra arguments go to pytest
#
# Test artifacts (training logs, loss plots, evaluation JSON and histograms) land in tests/output/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

QUICK=0
if [ "${1:-}" = --quick ]; then QUICK=1; shift; fi

mkdir -p tests/output
if [ "$QUICK" = 1 ]; then
    bash scripts/setup.sh --inference
    exec .venv/bin/python -m pytest -q -m "not (caffe or browser or cluster or slow)" "$@"
fi
bash scripts/setup.sh --browser --cluster
# The extra is installed: its tests must run here, never skip (tests/test_cluster.py).
export DEEP_LANDMARK_CLUSTER_EXTRA=1
exec .venv/bin/python -m pytest -q "$@"
