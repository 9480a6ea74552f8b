#!/usr/bin/env bash
# Serve the web app: granian reads requests, the model runs in one process per core.
#
#   ./webapp/run.sh [--host 127.0.0.1] [--port 8000] [--model DIR] [--detector blaze|mtcnn|haar]
#                   [--workers N] [--timeout 30] [--read-timeout 10] [--max-connections 128]
#                   [--max-upload-mb 10] [--skip-setup]
#
# --workers: processes that run the model (default: one per core); --timeout: seconds one photo
# may take there; --read-timeout: seconds a client has for its headers, and for its body plus one
# second per 64 KB it declares; --max-connections: connections served at once (more wait).
# Runs scripts/setup.sh --inference first (no Caffe; it only checks when everything is
# installed). Listens on 127.0.0.1 unless --host says otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HOST=127.0.0.1
PORT=8000
WORKERS=""
TIMEOUT=30
READ_TIMEOUT=10
MAX_CONNECTIONS=128
SETUP=1
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --host) need "$@"; HOST="$2"; shift 2 ;;
        --port) need "$@"; PORT="$2"; shift 2 ;;
        --model) need "$@"; export DEEP_LANDMARK_MODEL="$2"; shift 2 ;;
        --detector) need "$@"; export DEEP_LANDMARK_DETECTOR="$2"; shift 2 ;;
        --workers) need "$@"; WORKERS="$2"; shift 2 ;;
        --timeout) need "$@"; TIMEOUT="$2"; shift 2 ;;
        --read-timeout) need "$@"; READ_TIMEOUT="$2"; shift 2 ;;
        --max-connections) need "$@"; MAX_CONNECTIONS="$2"; shift 2 ;;
        --max-upload-mb) need "$@"; export DEEP_LANDMARK_MAX_UPLOAD_MB="$2"; shift 2 ;;
        --skip-setup) SETUP=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in PORT TIMEOUT READ_TIMEOUT MAX_CONNECTIONS ${WORKERS:+WORKERS}; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --${v,,} must be a positive whole number, not '${!v}'" | tr _ - >&2; exit 2; }
done
# granian takes at most 60 s for headers.
[ "$READ_TIMEOUT" -le 60 ] || { echo "run.sh: --read-timeout must be at most 60" >&2; exit 2; }

# The light set-up: the web app needs .venv, not Caffe.
[ "$SETUP" = 1 ] && bash scripts/setup.sh --inference

# Fail here, with the reason, rather than in every process.
.venv/bin/python -m webapp.app --check

export DEEP_LANDMARK_PROCESSES="$WORKERS" DEEP_LANDMARK_TIMEOUT="$TIMEOUT" DEEP_LANDMARK_READ_TIMEOUT="$READ_TIMEOUT"
# One granian process: it only reads and writes sockets (the model's processes do the work).
exec .venv/bin/granian \
    --interface asginl --http 1 --no-ws \
    --host "$HOST" --port "$PORT" \
    --workers 1 \
    --http1-header-read-timeout "$((READ_TIMEOUT * 1000))" \
    --backpressure "$MAX_CONNECTIONS" \
    --access-log \
    --respawn-failed-workers \
    webapp.asgi:app
