"""The Caffe that scripts/setup.sh builds from source: the command, a short real training run on
the committed sample, pycaffe importable in the venv, and the set-up's quick second run."""
from __future__ import annotations

import math
import os
import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from common.caffe_tools import CAFFE_ENV, VENV, caffe_command
from common.nets import by_name
from common.paths import ROOT
from conftest import run_module
from model.config import settings_for
from model.generate import render_net

pytestmark = pytest.mark.caffe


def test_caffe_version():
    proc = subprocess.run([caffe_command(), "--version"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "caffe version 1.0.0"


def test_caffe_is_the_venv_link_into_the_build_cache():
    if os.environ.get(CAFFE_ENV):
        return   # someone chose another Caffe on purpose
    link = VENV / "bin" / "caffe"
    assert caffe_command() == str(link) and link.is_symlink()
    target = link.resolve()
    assert not target.is_relative_to(ROOT), f"{target} should live in the machine's cache"
    libs = subprocess.run(["ldd", str(target)], capture_output=True, text=True, timeout=30).stdout
    # built without OpenCV (nothing to clash with the system's), BLAS resolved to OpenBLAS
    assert "opencv" not in libs
    assert re.search(r"libblas\.so\.3 => \S+", libs) and "libopenblas" in libs, libs


def test_twenty_iterations_of_caffe_train_on_the_sample(tmp_path, level1_hdf5):
    settings = replace(settings_for(1), max_iter=20, display=5, test_interval=20, snapshot=20)
    folder = render_net(by_name("F1"), settings, tmp_path, level1_hdf5)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", GLOG_logtostderr="1", GLOG_minloglevel="0")
    proc = subprocess.run([caffe_command(), "train", f"--solver={folder / 'solver.prototxt'}"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    losses = {int(i): float(v) for i, v in re.findall(r"Iteration (\d+)\b.*?, loss = (\S+)", log)}
    assert sorted(losses) == [0, 5, 10, 15, 20], log[-3000:]
    assert all(math.isfinite(v) for v in losses.values()), losses
    assert losses[20] < losses[0] / 2, losses   # it learns: the first loss is that of random weights
    assert re.search(r"Test net output #0: loss = \S+", log)
    assert "Optimization Done." in log
    assert (folder / "snapshots" / "1_F1_iter_20.caffemodel").is_file()


def test_import_caffe_in_the_venv():
    code = "import caffe, numpy; print(caffe.__version__); print(caffe.__file__); print(numpy.__version__)"
    proc = subprocess.run([str(VENV / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    version, where, numpy_version = proc.stdout.split()
    assert version == "1.0.0"
    assert not Path(where).is_relative_to(ROOT)
    assert numpy_version.split(".")[0] == "2"


def test_second_caffe_setup_run_only_checks():
    """What a set-up run does for Caffe when all is built and linked (--check: the same check,
    but never a build, should the cache be out of date)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "scripts/caffe/build.sh", "--check", str(VENV)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    assert "in place" in proc.stdout and "building" not in proc.stdout, proc.stdout
    print(f"caffe part of a second set-up run: {seconds:.3f} s")
    assert seconds < 1.0


def test_a_venv_from_another_python_is_refused(tmp_path):
    """pycaffe links Debian's libpython; a venv of another Python build gets a clear message."""
    fake = tmp_path / "venv"
    fake.mkdir()
    (fake / "pyvenv.cfg").write_text("home = /opt/pyenv/versions/3.11.9/bin\nversion = 3.11.9\n")
    proc = subprocess.run(["bash", "scripts/caffe/build.sh", str(fake)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "Debian's Python" in proc.stderr and "PYTHON=/usr/bin/python3.11" in proc.stderr


def test_gpu_training_with_the_cpu_build_stops_before_training(tmp_path, level1_hdf5):
    """--gpu is passed on to Caffe; the set-up's CPU build is caught before any net starts."""
    if os.environ.get(CAFFE_ENV):
        return   # another Caffe, maybe a CUDA one
    proc = run_module("model.train", "--nets", "F1", "--iters", 10, "--gpu", 0, "--model-root", tmp_path / "m",
                      "--hdf5-root", level1_hdf5, "--log-dir", tmp_path / "log", check=False)
    assert proc.returncode == 1
    assert "cannot use GPU 0: Cannot use GPU in CPU-only Caffe" in proc.stderr, proc.stderr
    assert CAFFE_ENV in proc.stderr and "docs/install.md" in proc.stderr
    assert not (tmp_path / "log").exists()
