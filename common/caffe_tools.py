"""Where the project's Caffe is: the `caffe` command and pycaffe that scripts/setup.sh builds from
source into the cache and links into .venv. Every caller finds Caffe through here, never on PATH,
so a different Caffe elsewhere on the machine (an old Debian package, say) is never picked up.
$DEEP_LANDMARK_CAFFE names another `caffe` command instead (a CUDA build, for example)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from common.paths import ROOT

CAFFE_ENV = "DEEP_LANDMARK_CAFFE"
VENV = ROOT / ".venv"

SETUP_HINT = "run scripts/setup.sh (it builds Caffe from source once per machine, then links it into .venv)"


class CaffeMissing(RuntimeError):
    pass


def caffe_command() -> str:
    """Path of the `caffe` command: $DEEP_LANDMARK_CAFFE, else .venv/bin/caffe."""
    chosen = os.environ.get(CAFFE_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise CaffeMissing(f"${CAFFE_ENV} is {chosen}, which is not an executable file")
        return str(path)
    path = VENV / "bin" / "caffe"
    if not (path.is_file() and os.access(path, os.X_OK)):   # is_file follows the link into the cache
        raise CaffeMissing(f"Caffe is not installed in {VENV}/bin: {SETUP_HINT}")
    return str(path)


def check_gpu(caffe: str, device: int) -> None:
    """CaffeMissing unless `caffe` can use GPU `device` (`caffe device_query`): the set-up's
    build is the CPU one, which would only fail once training starts."""
    proc = subprocess.run([caffe, "device_query", f"--gpu={device}"], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1"))
    if proc.returncode != 0:
        fatal = [ln.split("] ", 1)[-1].rstrip(".") for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("F")]
        raise CaffeMissing(f"{caffe} cannot use GPU {device}: {fatal[0] if fatal else f'exit {proc.returncode}'}. "
                           f"A CUDA build of Caffe is needed (docs/install.md, \"GPU\"); "
                           f"name its command with ${CAFFE_ENV}")


def import_caffe():
    """pycaffe, imported quietly (no glog line per layer set up, unless $GLOG_minloglevel says
    otherwise), or CaffeMissing saying how to install it."""
    before = os.environ.get("GLOG_minloglevel")
    # glog reads the variable once, when pycaffe loads it; put back, so that `caffe` commands
    # started later by this process still log.
    os.environ["GLOG_minloglevel"] = before or "2"
    try:
        import caffe
    except ImportError as exc:
        raise CaffeMissing(f"pycaffe cannot be imported by {sys.executable} ({exc}): {SETUP_HINT}") from exc
    finally:
        if before is None:
            del os.environ["GLOG_minloglevel"]
    caffe.set_mode_cpu()
    return caffe
