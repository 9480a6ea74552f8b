#!/usr/bin/env bash
# deep-landmark: set-up and the whole pipeline, level by level.
#
#   ./bootstrap.sh                       full run on the CUHK data (dataset/train/ or --data DIR)
#   ./bootstrap.sh --quick               the whole pipeline on the committed sample, short training
#   ./bootstrap.sh --only train2         redo one step
#   ./bootstrap.sh --from data3          redo a step and every step after it
#
# Steps: setup prototxt data1 train1 data2 train2 data3 train3 report
# Every step skips work already done and says so, unless --only/--from names it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

# The levels come from the net table (common/nets.py needs nothing beyond Python itself, so the
# system's python3 reads it before the set-up has made .venv).
LEVELS=$(${PYTHON:-python3} -c 'from common.nets import LEVELS; print(*LEVELS)')
STEPS=(setup prototxt)
for L in $LEVELS; do STEPS+=("data$L" "train$L"); done
STEPS+=(report)
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; cat <<EOF

Options:
  --data DIR     data set folder (default \$DEEP_LANDMARK_DATA, else dataset/train/)
  --quick        committed sample (tests/data/sample), a few hundred iterations per net;
                 everything goes to build/quick/ (or --out) and leaves model/ alone
  --out DIR      put models, HDF5 files, logs and the report under DIR instead of
                 model/, dataset/hdf5/, log/ and result/
  --only STEP    run (and redo) just this step
  --from STEP    run (and redo) this step and the ones after it
  --gpu N[,M..]  train on GPU N, or one Caffe process per listed GPU (needs a GPU build of
                 Caffe; the set-up installs the CPU one)
  --jobs N       Caffe processes at once (default: one per core)
  --patch-iters N  levels 2-3 train N iterations a net instead of 40000 (20000: the
                 pipeline about 9.5 minutes shorter on 2 cores, level 3 1.09% -> 1.11%)
  --loss KIND    training loss of every net: euclidean (the default: Caffe's EuclideanLoss,
                 squared error), distance (mean point distance) or l1 (mean absolute error)
  --wear P       cut a share P (0-1) of the random training variants from a worn copy of the
                 photo (blur, JPEG, noise, darkness; docs/training.md); default 0.5, the
                 release's (0: the releases before 2026-12-02)
  -h, --help     this text

A full run on the CUHK data remakes the released model's weights bit for bit (the set-up's
Caffe keeps BVLC Caffe's arithmetic order, and training pins OpenBLAS's AVX2 kernels, those
of the release, on any CPU that has them).

Environment: DEEP_LANDMARK_OPENCV_CROPS=1 cuts the crops with OpenCV instead of
common/cropkernel.c (the same bytes, slower).
EOF
}

DATA="${DEEP_LANDMARK_DATA:-}"; OUT=""; QUICK=0; ONLY=""; FROM=""; GPU=""; JOBS=""; PATCH_ITERS=""; LOSS=""; WEAR=""
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA="${2:?--data needs a folder}"; shift 2 ;;
        --data=*) DATA="${1#*=}"; shift ;;
        --quick) QUICK=1; shift ;;
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --only) ONLY="${2:?--only needs a step}"; shift 2 ;;
        --from) FROM="${2:?--from needs a step}"; shift 2 ;;
        --gpu) GPU="${2:?--gpu needs a device number or a comma list}"; shift 2 ;;
        --jobs) JOBS="${2:?--jobs needs a number}"; shift 2 ;;
        --patch-iters) PATCH_ITERS="${2:?--patch-iters needs a number}"; shift 2 ;;
        --patch-iters=*) PATCH_ITERS="${1#*=}"; shift ;;
        --loss) LOSS="${2:?--loss needs euclidean, distance or l1}"; shift 2 ;;
        --loss=*) LOSS="${1#*=}"; shift ;;
        --wear) WEAR="${2:?--wear needs a share between 0 and 1}"; shift 2 ;;
        --wear=*) WEAR="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bootstrap.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for s in "$ONLY" "$FROM"; do
    [ -z "$s" ] || [[ " ${STEPS[*]} " == *" $s "* ]] || { echo "bootstrap.sh: unknown step '$s'; steps: ${STEPS[*]}" >&2; exit 2; }
done
if [ -n "$PATCH_ITERS" ] && ! [[ "$PATCH_ITERS" =~ ^[1-9][0-9]*$ ]]; then
    echo "bootstrap.sh: --patch-iters needs a positive whole number, not '$PATCH_ITERS'" >&2; exit 2
fi
if [ -n "$WEAR" ] && ! [[ "$WEAR" =~ ^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$ ]]; then
    echo "bootstrap.sh: --wear needs a share between 0 and 1, not '$WEAR'" >&2; exit 2
fi
case "$LOSS" in
    ""|euclidean|distance|l1) ;;
    *) echo "bootstrap.sh: --loss is euclidean, distance or l1, not '$LOSS'" >&2; exit 2 ;;
esac

PY=.venv/bin/python
MODEL=model; HDF5=dataset/hdf5; LOGS=log; RESULT=result
SOLVER_FLAGS=()   # model/config.py overrides, for the generator and the trainer
if [ "$QUICK" = 1 ]; then
    DATA="${DATA:-tests/data/sample}"
    OUT="${OUT:-build/quick}"
    SOLVER_FLAGS+=(--quick)
fi
if [ -n "$OUT" ]; then
    MODEL="$OUT/model"; HDF5="$OUT/hdf5"; LOGS="$OUT/log"; RESULT="$OUT/result"
fi
[ -n "$GPU" ] && SOLVER_FLAGS+=(--gpu "$GPU")
[ -n "$LOSS" ] && SOLVER_FLAGS+=(--loss "$LOSS")
TRAIN_FLAGS=("${SOLVER_FLAGS[@]}")
[ -n "$JOBS" ] && TRAIN_FLAGS+=(--jobs "$JOBS")
DATA_FLAGS=()
[ -n "$DATA" ] && DATA_FLAGS=(--data "$DATA")
WEAR_FLAGS=()
[ -n "$WEAR" ] && WEAR_FLAGS=(--wear "$WEAR")

# Should step $1 run, and with --force?
FORCE=()
selected() {
    local step=$1 started=0 s
    FORCE=()
    if [ -n "$ONLY" ]; then [ "$step" = "$ONLY" ] && { FORCE=(--force); return 0; }; return 1; fi
    if [ -n "$FROM" ]; then
        for s in "${STEPS[@]}"; do
            [ "$s" = "$FROM" ] && started=1
            [ "$s" = "$step" ] && break
        done
        [ "$started" = 1 ] && { FORCE=(--force); return 0; }
        return 1
    fi
    return 0
}
# Each step's wall time, for the summary at the end (where the time of a long run went).
TIMES=(); STEP_NAME=""; STEP_START=$SECONDS
banner() {
    finish_step
    STEP_NAME=$1; STEP_START=$SECONDS
    printf '\n=== %s: %s (%s) ===\n' "$1" "$2" "$(date +%H:%M:%S)"
}
finish_step() {
    [ -n "$STEP_NAME" ] && TIMES+=("$STEP_NAME $((SECONDS - STEP_START))")
    STEP_NAME=""
}

# The data must be there before anything long starts, the set-up's Caffe build included
# (common/paths.py needs nothing beyond Python itself).
${PYTHON:-python3} - "$QUICK" "${DATA_FLAGS[@]}" <<'EOF' || exit 1
import sys
from common.paths import DataMissing, data_lists
quick, arg = sys.argv[1] == "1", (sys.argv[3] if len(sys.argv) > 3 else None)
try:
    train, test = data_lists(arg)
except DataMissing as exc:
    sys.exit(f"\n{exc}" + ("" if quick else
             "\n\nNo data yet? ./bootstrap.sh --quick runs the whole pipeline now, on the sample\n"
             "committed under tests/data/sample/ (a few hundred iterations a net; results in build/quick/)."))
print(f"data: {train.parent}")
EOF

# Set-up always runs: it takes a second when everything is in place.
banner setup "system packages and .venv"
bash scripts/setup.sh

if selected prototxt; then
    banner prototxt "render model/<level>_<name>/*.prototxt from model/templates"
    $PY -m model.generate "${SOLVER_FLAGS[@]}" --model-root "$MODEL" --hdf5-root "$HDF5"
fi

for L in $LEVELS; do
    if selected "data$L"; then
        banner "data$L" "level-$L training data (HDF5)"
        if [ "$L" = 1 ]; then
            $PY -m dataset.level1 "${DATA_FLAGS[@]}" "${WEAR_FLAGS[@]}" --hdf5-root "$HDF5" "${FORCE[@]}"
        else
            $PY -m dataset.level$L "${DATA_FLAGS[@]}" "${WEAR_FLAGS[@]}" --hdf5-root "$HDF5" --model "$MODEL" "${FORCE[@]}"
        fi
    fi
    if selected "train$L"; then
        banner "train$L" "level-$L nets trained by caffe"
        LEVEL_FLAGS=()
        if [ "$L" != 1 ] && [ -n "$PATCH_ITERS" ]; then LEVEL_FLAGS=(--iters "$PATCH_ITERS"); fi
        $PY -m model.train --level "$L" --model-root "$MODEL" --hdf5-root "$HDF5" --log-dir "$LOGS" \
            "${TRAIN_FLAGS[@]}" "${LEVEL_FLAGS[@]}" "${FORCE[@]}"
        $PY -m common.caffelog --level "$L" --log-dir "$LOGS"
    fi
done

if selected report; then
    banner report "evaluation on the test list, report in $RESULT/"
    $PY -m model.draw --model "$MODEL" --out "$RESULT/nets"
    $PY -m common.report "${DATA_FLAGS[@]}" --model "$MODEL" --out "$RESULT" --log-dir "$LOGS"
fi
finish_step
echo
summary=""
for t in "${TIMES[@]}"; do
    set -- $t
    summary+="${summary:+, }$1 $(( $2 / 60 )):$(printf %02d $(( $2 % 60 )))"
done
printf 'done in %d:%02d min (%s).\n' $((SECONDS / 60)) $((SECONDS % 60)) "$summary"
