#!/usr/bin/env bash
# Serve the web app with gunicorn (several worker processes, each loading the model once).
#
#   ./webapp/run.sh [--host 127.0.0.1] [--port 8000] [--model DIR] [--detector mtcnn|haar]
#                   [--workers 3] [--timeout 30] [--max-upload-mb 10] [--skip-setup]
#
# Runs scripts/setup.sh first (it only checks when everything is installed). Listens on
# 127.0.0.1 unless --host says otherwise; put a reverse proxy in front to serve the public.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

HOST=127.0.0.1
PORT=8000
WORKERS=3
TIMEOUT=30
SETUP=1
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --host) need "$@"; HOST="$2"; shift 2 ;;
        --port) need "$@"; PORT="$2"; shift 2 ;;
        --model) need "$@"; export DEEP_LANDMARK_MODEL="$2"; shift 2 ;;
        --detector) need "$@"; export DEEP_LANDMARK_DETECTOR="$2"; shift 2 ;;
        --workers) need "$@"; WORKERS="$2"; shift 2 ;;
        --timeout) need "$@"; TIMEOUT="$2"; shift 2 ;;
        --max-upload-mb) need "$@"; export DEEP_LANDMARK_MAX_UPLOAD_MB="$2"; shift 2 ;;
        --skip-setup) SETUP=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in PORT WORKERS TIMEOUT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "run.sh: --${v,,} must be a whole number, not '${!v}'" >&2; exit 2; }
done

[ "$SETUP" = 1 ] && bash scripts/setup.sh

# Fail here, with the reason, rather than in every worker.
.venv/bin/python -m webapp.app --check

exec .venv/bin/gunicorn \
    --bind "$HOST:$PORT" \
    --workers "$WORKERS" \
    --timeout "$TIMEOUT" \
    --graceful-timeout 10 \
    --max-requests 2000 --max-requests-jitter 200 \
    $( [ -d /dev/shm ] && echo --worker-tmp-dir /dev/shm ) \
    --access-logfile - \
    --no-control-socket \
    webapp.wsgi:app
