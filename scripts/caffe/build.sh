#!/usr/bin/env bash
# BVLC Caffe 1.0 built from Debian's source package (bullseye's caffe 1.0.0+git20180821.99bd997-8,
# Debian's patches, then the *.patch files beside this script) against this machine's Debian 12
# libraries: the `caffe` command and pycaffe for the project's .venv.
#
#   scripts/caffe/build.sh --deps    the Debian packages the build needs (scripts/setup.sh installs them)
#   scripts/caffe/build.sh VENV      build once per machine, link the result into VENV
#   scripts/caffe/build.sh --check VENV   only say whether VENV has the build (exit 1 if not)
#
# The build lives in a cache outside the work tree, so every checkout on the machine shares it:
# $DEEP_LANDMARK_CACHE, else /var/cache/deep-landmark as root, else ~/.cache/deep-landmark.
#   caffe/<source+patches+flags key>/          source, build tree, build.log; bin is build/tools/caffe
#   caffe/<key>/py<X.Y>-numpy<version>/caffe/  pycaffe for one Python and numpy (one per ABI)
# VENV gets bin/caffe (a link) and site-packages/deep_landmark_caffe.pth (the pycaffe folder).
# With everything in place a run only checks, well under a second.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

VERSION=1.0.0+git20180821.99bd997-8
ORIG=caffe_1.0.0+git20180821.99bd997.orig.tar.gz
ORIG_SHA256=e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c
DEBIAN=caffe_$VERSION.debian.tar.xz
DEBIAN_SHA256=07cf073227494a6b07234e40cb5df91db566616593eef9baafdc4d06ad159f21

# Debian's own configuration (debian/rules) except: Caffe reads this project's data from HDF5,
# so the OpenCV, LMDB and LevelDB readers are left out (no OpenCV library of any version is
# linked, so none can conflict with the system's); and no Python layer, so the `caffe` command
# does not depend on which Python or numpy a venv has. A unity build (16 sources per compiler
# run) parses the heavy boost/protobuf headers once per batch: about a third of the CPU time.
CMAKE_FLAGS=(
    -DCMAKE_BUILD_TYPE=Release -DCPU_ONLY=ON -DUSE_CUDNN=OFF -DUSE_NCCL=OFF -DBLAS=Generic
    -DBUILD_SHARED_LIBS=ON -DBUILD_docs=OFF -DBUILD_matlab=OFF
    -DBUILD_python=ON -DBUILD_python_layer=OFF
    -DUSE_OPENCV=OFF -DUSE_LMDB=OFF -DUSE_LEVELDB=OFF
    -DCMAKE_UNITY_BUILD=ON -DCMAKE_UNITY_BUILD_BATCH_SIZE=16
    # Floating-point operations may be assumed not to trap (no program here enables traps), so
    # that a comparison inside an elementwise loop compiles without a branch. Values are
    # unchanged: this permits no reordering or contraction of arithmetic.
    -DCMAKE_CXX_FLAGS=-fno-trapping-math
)
BUILD_DEPS=(
    cmake make g++ patch xz-utils
    libboost-filesystem-dev libboost-python-dev libboost-system-dev libboost-thread-dev
    libgflags-dev libgoogle-glog-dev libhdf5-dev libprotobuf-dev protobuf-compiler
    libblas-dev libpython3.11-dev
)

say() { printf '[setup] caffe: %s\n' "$*"; }
die() { printf '[setup] ERROR: caffe: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" = --deps ]; then
    echo "${BUILD_DEPS[*]}"
    exit 0
fi
CHECK_ONLY=0
[ "${1:-}" = --check ] && { CHECK_ONLY=1; shift; }
[ $# -eq 1 ] || die "usage: $0 --deps | $0 [--check] VENV"
VENV="$(cd "$1" && pwd)"

# --- which build this venv needs (no Python started: this part must stay fast) -------------
cfg_value() { awk -F' *= *' -v k="$1" '$1==k {print $2; exit}' "$VENV/pyvenv.cfg"; }
[ -f "$VENV/pyvenv.cfg" ] || die "$VENV is not a virtual environment (no pyvenv.cfg)"
PY_HOME=$(cfg_value home)
PY_VER=$(cfg_value version | cut -d. -f1,2)
[ -n "$PY_VER" ] || PY_VER=$(cfg_value version_info | cut -d. -f1,2)
# pycaffe links Debian's boost-python, which links Debian's libpython: another Python build
# (pyenv, conda, a self-compiled one) in the same process would be a second interpreter.
[ "$PY_HOME" = /usr/bin ] || die "pycaffe needs a .venv made from Debian's Python (/usr/bin/python3.11);
  $VENV was made from $PY_HOME. Remove it and run: PYTHON=/usr/bin/python3.11 scripts/setup.sh"
SITE="$VENV/lib/python$PY_VER/site-packages"
NUMPY_VER=$(find "$SITE" -maxdepth 1 -name 'numpy-*.dist-info' -printf '%f\n' 2>/dev/null | sed 's/^numpy-//; s/\.dist-info$//' | head -1)
[ -n "$NUMPY_VER" ] || die "numpy is not installed in $VENV (install requirements.txt first)"

if [ -n "${DEEP_LANDMARK_CACHE:-}" ]; then CACHE="$DEEP_LANDMARK_CACHE"
elif [ "$(id -u)" = 0 ]; then CACHE=/var/cache/deep-landmark
else CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/deep-landmark"; fi
KEY=$( { echo "$ORIG_SHA256 $DEBIAN_SHA256 ${CMAKE_FLAGS[*]} $(uname -m)"; cat "$HERE"/*.patch; } | sha256sum | cut -c1-12)
CORE="$CACHE/caffe/$VERSION-$KEY"
PYDIR="$CORE/py$PY_VER-numpy$NUMPY_VER"
BIN="$CORE/build/tools/caffe"
PTH="$SITE/deep_landmark_caffe.pth"
LOG="$CORE/build.log"

linked() {
    [ -f "$CORE/.done" ] && [ -f "$PYDIR/.done" ] && [ "$(readlink "$VENV/bin/caffe" 2>/dev/null)" = "$BIN" ] &&
        [ "$(cat "$PTH" 2>/dev/null)" = "$PYDIR" ] && "$VENV/bin/caffe" --version 2>/dev/null | grep '1\.0\.0' >/dev/null
}
if linked; then
    say "$("$VENV/bin/caffe" --version 2>&1 | awk '{print $NF}') and pycaffe (Python $PY_VER, numpy $NUMPY_VER) in place ($CORE)"
    exit 0
fi
[ "$CHECK_ONLY" = 1 ] && { say "not built or not linked into $VENV: run scripts/setup.sh"; exit 1; }

# --- build ----------------------------------------------------------------------------------
mkdir -p "$CACHE/caffe/downloads" "$CORE"
exec 9>"$CACHE/caffe/.lock"
if ! flock -n 9; then
    say "waiting for another set-up that is building Caffe"
    flock 9
fi

STEP=""
failed() {
    local rc=$?
    [ -n "$STEP" ] || exit "$rc"
    {
        printf '[setup] ERROR: caffe: step "%s" failed (exit %s). Its log is kept: %s\n' "$STEP" "$rc" "$LOG"
        printf '[setup] last lines of the log:\n'
        tail -n 30 "$LOG" | sed 's/^/    /'
    } >&2
    exit 1
}
trap failed EXIT
# run STEP-NAME COMMAND...: the command's output goes to the log only
run() {
    STEP=$1; shift
    printf '\n=== %s: %s (%s)\n' "$STEP" "$*" "$(date '+%F %T')" >>"$LOG"
    "$@" >>"$LOG" 2>&1
}

# The mirror this machine's apt already uses; the source files are checked against the sums above.
debian_mirror() {
    local f uri=""
    [ -n "${DEEP_LANDMARK_DEBIAN_MIRROR:-}" ] && { echo "$DEEP_LANDMARK_DEBIAN_MIRROR"; return; }
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ /(bookworm|bullseye|trixie)([ \t]|$)/ && u != "") {print u; exit} }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return; }
    done
    if [ -f /etc/apt/sources.list ]; then
        awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list
    fi
}

fetch() {   # fetch FILE SHA256: into downloads/, verified
    local file=$1 sum=$2 dest="$CACHE/caffe/downloads/$1" mirror
    if [ -f "$dest" ] && echo "$sum  $dest" | sha256sum -c --quiet >/dev/null 2>&1; then return; fi
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || { echo "no Debian mirror in /etc/apt; set DEEP_LANDMARK_DEBIAN_MIRROR"; return 1; }
    echo "fetching ${mirror%/}/pool/main/c/caffe/$file"
    "$VENV/bin/python" - "${mirror%/}/pool/main/c/caffe/$file" "$dest.part" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=120) as r, open(sys.argv[2], "wb") as f:
    while chunk := r.read(1 << 20):
        f.write(chunk)
EOF
    echo "$sum  $dest.part" | sha256sum -c --quiet || { echo "checksum mismatch for $file"; rm -f "$dest.part"; return 1; }
    mv "$dest.part" "$dest"
}

unpack() {   # Debian's source package with its patch series, then ours
    local p
    rm -rf "$CORE/src" "$CORE/build"
    mkdir -p "$CORE/src"
    tar -xzf "$CACHE/caffe/downloads/$ORIG" -C "$CORE/src"
    tar -xJf "$CACHE/caffe/downloads/$DEBIAN" -C "$CORE/src"
    while read -r p; do
        case "$p" in ''|'#'*) continue ;; esac
        echo "debian/patches/$p"; patch -d "$CORE/src" -p1 --forward < "$CORE/src/debian/patches/$p"
    done < "$CORE/src/debian/patches/series"
    for p in "$HERE"/*.patch; do
        echo "$p"; patch -d "$CORE/src" -p1 --forward < "$p"
    done
}

configure() {   # the Python part is configured for the venv's own interpreter and numpy
    local inc lib out
    inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    lib=$("$VENV/bin/python" -c 'import sysconfig as s; print(s.get_config_var("LIBDIR") + "/" + s.get_config_var("LDLIBRARY"))')
    if ! out=$(cmake -S "$CORE/src" -B "$CORE/build" "${CMAKE_FLAGS[@]}" -Dpython_version="$PY_VER" \
            -DPYTHON_EXECUTABLE="$VENV/bin/python" -DPYTHON_INCLUDE_DIR="$inc" -DPYTHON_LIBRARY="$lib" 2>&1); then
        echo "$out"; return 1
    fi
    echo "$out"
    grep -q "NumPy ver. $NUMPY_VER found" <<<"$out" || { echo "cmake did not find the venv's numpy $NUMPY_VER"; return 1; }
}

progress() {   # cmake's "[ 42%]" lines -> one line per 10% (bash: awk may buffer a pipe)
    local line p last=-10
    while IFS= read -r line; do
        [[ $line =~ ^\[\ *([0-9]+)%\] ]] || continue
        p=${BASH_REMATCH[1]}
        if [ "$p" -ge $((last + 10)) ]; then say "compiling $1: $p%"; last=$p; fi
    done
}

compile() {   # compile TARGET...: make, with a progress line every 10%
    local jobs="${CAFFE_JOBS:-$(nproc)}" rc
    STEP="compile $*"
    printf '\n=== %s (%s)\n' "$STEP" "$(date '+%F %T')" >>"$LOG"
    set +e
    make -C "$CORE/build" -j"$jobs" "$@" 2>&1 | tee -a "$LOG" | progress "$*"
    rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}

install_python() {   # the pycaffe package, with its own copy of _caffe.so, into PYDIR
    rm -rf "$PYDIR" "$PYDIR.tmp"
    mkdir -p "$PYDIR.tmp"
    cp -rL "$CORE/src/python/caffe" "$PYDIR.tmp/caffe"
    rm -rf "$PYDIR.tmp/caffe/test" "$PYDIR.tmp/caffe/_caffe.cpp"
    PYTHONPATH="$PYDIR.tmp" "$VENV/bin/python" -c 'import caffe, numpy; print("import caffe:", caffe.__version__, "numpy", numpy.__version__)'
    mv "$PYDIR.tmp" "$PYDIR"
    touch "$PYDIR/.done"
}

T0=$SECONDS
BUILT_CORE=0
if [ ! -f "$CORE/.done" ]; then
    say "building BVLC Caffe $VERSION from source, once per machine (a few minutes)"
    say "cache $CORE, log $LOG"
    : >"$LOG"
    run "fetch source" fetch "$ORIG" "$ORIG_SHA256"
    run "fetch source" fetch "$DEBIAN" "$DEBIAN_SHA256"
    [ -f "$CORE/.patched" ] || { run "unpack and patch" unpack; touch "$CORE/.patched"; }
    say "configuring"
    run "configure (cmake)" configure
    compile caffe.bin   # the command and libcaffe; one make goal at a time (cmake's goals race under -j)
    STEP="check caffe --version"
    "$BIN" --version 2>&1 | tee -a "$LOG" | grep '1\.0\.0' >/dev/null
    touch "$CORE/.done"
    BUILT_CORE=1
fi
if [ ! -f "$PYDIR/.done" ]; then
    [ "$BUILT_CORE" = 1 ] || say "building pycaffe for Python $PY_VER with numpy $NUMPY_VER; log $LOG"
    run "configure (cmake) for this venv" configure
    compile pycaffe
    run "install pycaffe (import check)" install_python
fi
STEP=""
trap - EXIT
flock -u 9

ln -sfn "$BIN" "$VENV/bin/caffe"
echo "$PYDIR" >"$PTH"
"$VENV/bin/caffe" --version 2>/dev/null | grep '1\.0\.0' >/dev/null || die "$VENV/bin/caffe does not run; see $LOG"
"$VENV/bin/python" -c 'import caffe' || die "'import caffe' fails in $VENV; see $LOG"
[ $((SECONDS - T0)) -gt 1 ] && say "built in $((SECONDS - T0)) s"
say "$("$BIN" --version 2>&1 | awk '{print $NF}') -> $VENV/bin/caffe; pycaffe (Python $PY_VER, numpy $NUMPY_VER) importable in $VENV"
