#!/usr/bin/env bash
# An interpreter with MediaPipe FaceMesh for benchmarks/video.py --mediapipe: its own virtual
# environment (MediaPipe pins its own numpy/OpenCV/protobuf, so not the project's .venv).
# 0.10.14 is the last line whose wheel ships the legacy face models. Quick when already made.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/mediapipe-venv
PIN=mediapipe==0.10.14
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import mediapipe, sys; sys.exit(mediapipe.__version__ != '${PIN#*==}')" 2>/dev/null; then
    echo "$VENV: $PIN already there"
    exit 0
fi
PY=${PYTHON:-python3.11}
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN"
"$VENV/bin/python" -c "import mediapipe; print('$VENV: mediapipe', mediapipe.__version__)"
