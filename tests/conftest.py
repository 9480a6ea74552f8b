"""Shared fixtures. Caffe training is the slow part, so the level-1 data is built once and the
three level-1 nets are trained once per test session (scope="session"); every test that needs
a trained net or a real Caffe log uses those."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from common.box import Box
from common.listfile import read_list
from common.paths import ROOT, SAMPLE_DATA, TEST_LIST, TRAIN_LIST

OUTPUT = ROOT / "tests" / "output"   # artifacts of the last run (gitignored): logs, plots, JSON
VARIANTS = 3                          # training samples per face in the session's level-1 data
TRAIN_ITERS = 300                     # iterations of each session-trained level-1 net


def training_loss(kind: str, out: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """(loss, d loss / d out) of the training loss `kind` (model/config.py `loss`) over a batch,
    from its definition, in float64: what the train net's "loss" top should hold."""
    d = np.asarray(out, dtype=np.float64) - target
    n = len(d)
    if kind == "euclidean":
        return float((d ** 2).sum() / (2 * n)), d / n
    if kind == "l1":
        return float(np.abs(d).mean()), np.sign(d) / d.size
    if kind == "distance":
        xy = d.reshape(n, -1, 2)
        dist = np.sqrt((xy ** 2).sum(axis=2) + 1e-8)
        return float(dist.mean()), (xy / dist[..., None] / dist.size).reshape(d.shape)
    raise ValueError(kind)


def run_module(module: str, *args, timeout: float = 240, check: bool = True,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m module args` from the project root, output captured; with `check`, a failure
    shows the command and its output. `env`: variables added to this process's environment."""
    cmd = [sys.executable, "-m", module, *map(str, args)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                    f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def save_artifact(path: Path, name: str | None = None) -> Path:
    """Copy a file into tests/output/ for a person to look at after the run."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    dest = OUTPUT / (name or Path(path).name)
    shutil.copyfile(path, dest)
    return dest


def pytest_collection_modifyitems(config, items):
    """Every test that uses the session's Caffe-trained nets needs the Caffe build: marked
    `caffe` here, so that ./test.sh --quick leaves it out (pytest.ini)."""
    for item in items:
        if "trained_level1" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.caffe)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    for name in (TRAIN_LIST, TEST_LIST):
        assert (SAMPLE_DATA / name).is_file(), f"missing {SAMPLE_DATA / name}; run scripts/make_sample.py"
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def train_faces(sample_dir):
    return read_list(sample_dir / TRAIN_LIST)


@pytest.fixture(scope="session")
def test_faces(sample_dir):
    return read_list(sample_dir / TEST_LIST)


@pytest.fixture(scope="session")
def level1_hdf5(tmp_path_factory, sample_dir) -> Path:
    """Level-1 HDF5 files of the sample, built by the real command line."""
    root = tmp_path_factory.mktemp("hdf5")
    run_module("dataset.level1", "--data", sample_dir, "--hdf5-root", root, "--variants", VARIANTS)
    return root


@dataclass
class Trained:
    model_root: Path
    hdf5_root: Path
    log_dir: Path
    stdout: str
    seconds: float


@pytest.fixture(scope="session")
def trained_level1(tmp_path_factory, level1_hdf5) -> Trained:
    """F1, EN1 and NM1 trained briefly by `python -m model.train` (real `caffe train`).
    --quick logs the loss every 50 iterations and tests every 100."""
    work = tmp_path_factory.mktemp("trained")
    model_root, log_dir = work / "model", work / "log"
    t0 = time.time()
    proc = run_module("model.train", "--nets", "F1", "EN1", "NM1", "--quick", "--iters", TRAIN_ITERS,
                      "--model-root", model_root, "--hdf5-root", level1_hdf5, "--log-dir", log_dir,
                      timeout=600)
    seconds = time.time() - t0
    for log in sorted(log_dir.glob("*.log")):
        save_artifact(log)
    return Trained(model_root, level1_hdf5, log_dir, proc.stdout, seconds)


def odd_boxes(image_w: int, image_h: int, n: int = 40, seed: int = 0) -> list[Box]:
    """Boxes of every kind the cascade meets: inside, leaving each edge, smaller than a net
    input, much larger than the image, fractional edges."""
    rng = np.random.default_rng(seed)
    boxes = [Box(-30, 40, -20, 50), Box(image_w - 60, image_w + 10, image_h - 65, image_h + 5),
             Box(100, 112, 100, 113), Box(-100, image_w + 150, -80, image_h + 170)]
    for _ in range(n - len(boxes)):
        w = rng.uniform(8, 1.5 * image_w)
        x, y = rng.uniform(-0.3 * w, image_w), rng.uniform(-0.3 * w, image_h)
        boxes.append(Box(x, x + w, y, y + w * rng.uniform(0.8, 1.25)))
    return boxes


# The served web app (webapp/run.sh, as a user starts it) is shared by test_server.py and
# test_browser.py. A short read timeout lets the slow-client test see clients cut off quickly.
SERVER_READ_TIMEOUT = 3


@dataclass
class Served:
    url: str
    port: int
    read_timeout: float


@pytest.fixture(scope="session")
def webapp_server(tmp_path_factory):
    """./webapp/run.sh on a free loopback port with 2 model processes, warmed up by one photo."""
    import urllib.request

    from tools import webapp_server as launch
    log = tmp_path_factory.mktemp("server") / "server.log"
    try:
        proc, url = launch.start(workers=2, extra=["--read-timeout", str(SERVER_READ_TIMEOUT)], log=log)
    except launch.ServerFailed as exc:
        pytest.fail(str(exc))
    try:
        # Each model process answers its first photo slowly (lazy set-up); no test should time that.
        body, ctype = launch.multipart((SAMPLE_DATA / "lfw_5590" / "Abdullah_Ahmad_Badawi_0001.jpg").read_bytes(),
                                       "warm.jpg")
        request = urllib.request.Request(url + "/api/landmarks", data=body, headers={"Content-Type": ctype})
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: urllib.request.urlopen(request, timeout=60).read(), range(4)))
        yield Served(url, int(url.rsplit(":", 1)[1]), SERVER_READ_TIMEOUT)
    finally:
        launch.stop(proc)
        save_artifact(log, "webapp_server.log")
