"""The real level-1 pipeline on the committed sample: list files -> HDF5 -> prototxt -> `caffe
train` (through model.train) -> weights that OpenCV's DNN module runs. Also resuming after an
interrupt and restarting a diverged net."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from common import caffelog, hdf5data
from common.netinputs import crop_box, net_input, net_target
from common.nets import of_level
from common.paths import ROOT
from conftest import TRAIN_ITERS, VARIANTS, run_module, save_artifact, training_loss
from model.config import settings_for
from model.generate import render_net

LEVEL1 = of_level(1)
MARKER = "# deep-landmark:"


def segments(log: Path) -> list[str]:
    """The log split into the runs model.train appended to it (each starts with its marker)."""
    text = log.read_text(errors="replace")
    return [MARKER + part for part in text.split(MARKER)[1:]]


# --- data ----------------------------------------------------------------------------------

def test_level1_hdf5_files(level1_hdf5, train_faces, test_faces):
    for spec in LEVEL1:
        folder = level1_hdf5 / spec.key
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["train"] == len(train_faces) * VARIANTS == 900
        assert meta["test"] == len(test_faces) == 100
        x, y = hdf5data.read(folder / "train.h5")
        xt, yt = hdf5data.read(folder / "test.h5")
        assert x.shape == (900, 1, spec.height, spec.width) and x.dtype == np.float32
        assert y.shape == (900, spec.n_outputs) and y.dtype == np.float32
        assert xt.shape == (100, 1, spec.height, spec.width) and yt.shape == (100, spec.n_outputs)
        for data, targets in ((x, y), (xt, yt)):
            assert np.isfinite(data).all() and np.isfinite(targets).all()
            # standardised per sample
            np.testing.assert_allclose(data.mean(axis=(1, 2, 3)), 0, atol=1e-4)
            np.testing.assert_allclose(data.std(axis=(1, 2, 3)), 1, atol=1e-3)
            # targets are crop-relative: inside the crop, give or take jitter
            assert targets.min() > -0.25 and targets.max() < 1.25
            assert 0.3 < targets.mean() < 0.7
        # Caffe's HDF5Data reads the file named in the .txt list
        assert Path((folder / "train.txt").read_text().strip()) == folder / "train.h5"
        # test faces go in unchanged, in list order: the same crops and targets as computed here
        for i in (0, 57, 99):
            f = test_faces[i]
            box = crop_box(spec, f.box)
            np.testing.assert_allclose(xt[i, 0], net_input(f.load_gray(), box, spec), atol=1e-5)
            np.testing.assert_allclose(yt[i], net_target(box, f.points, spec), atol=1e-6)


def test_render_net_writes_prototxt(tmp_path, level1_hdf5):
    settings = settings_for(1)
    for spec in LEVEL1:
        out = render_net(spec, settings, tmp_path, level1_hdf5)
        assert out == tmp_path / spec.key
        train = (out / "train.prototxt").read_text()
        deploy = (out / "deploy.prototxt").read_text()
        solver = (out / "solver.prototxt").read_text()
        assert str(level1_hdf5 / spec.key / "train.txt") in train
        assert str(level1_hdf5 / spec.key / "test.txt") in train
        assert f"dim: 1 dim: 1 dim: {spec.height} dim: {spec.width}" in deploy
        assert "HDF5Data" not in deploy and "EuclideanLoss" in train
        assert f"num_output: {spec.n_outputs}\n" in deploy
        assert f'net: "{out / "train.prototxt"}"' in solver
        assert "test_iter: 1\n" in solver  # 100 test faces, batch 100 (from meta.json)
        assert f"max_iter: {settings.max_iter}\n" in solver
        assert f'snapshot_prefix: "{out / "snapshots" / spec.key}"' in solver


# --- training --------------------------------------------------------------------------------

def test_training_loss_falls(trained_level1):
    print(f"training F1, EN1, NM1 x {TRAIN_ITERS} iterations took {trained_level1.seconds:.0f} s")
    for spec in LEVEL1:
        assert f"[{spec.key}] done: {TRAIN_ITERS} iterations" in trained_level1.stdout
        log = trained_level1.log_dir / f"{spec.key}.log"
        rows = caffelog.parse_file(log)
        train = [(r.iteration, r.train_loss) for r in rows if r.train_loss is not None]
        assert train[0][0] == 0 and train[-1][0] == TRAIN_ITERS and len(train) >= 5, train
        losses = np.array([v for _, v in train])
        assert np.isfinite(losses).all()
        # a tenth of the squared error; a loss that grows with the error itself (distance, l1)
        # falls by its square root
        kind = settings_for(1).loss
        assert losses[-3:].mean() < (0.1 if kind == "euclidean" else 0.1 ** 0.5) * losses[0], train
        # Better than the best constant: the test loss is below that of always predicting the
        # mean training target (so the net uses the image, not only the average face).
        _, y = hdf5data.read(trained_level1.hdf5_root / spec.key / "train.h5")
        _, yt = hdf5data.read(trained_level1.hdf5_root / spec.key / "test.h5")
        constant = training_loss(kind, np.broadcast_to(y.mean(axis=0), yt.shape), yt)[0]
        test_loss = [r.test_loss for r in rows if r.test_loss is not None][-1]
        assert test_loss < 0.9 * constant, (spec.key, test_loss, constant)


def test_trained_weights_run_in_opencv(trained_level1):
    for spec in LEVEL1:
        folder = trained_level1.model_root / spec.key
        weights = folder / "weights.caffemodel"
        snapshot = folder / "snapshots" / f"{spec.key}_iter_{TRAIN_ITERS}.caffemodel"
        assert weights.read_bytes() == snapshot.read_bytes()
        net = cv2.dnn.readNetFromCaffe(str(folder / "deploy.prototxt"), str(weights))
        x, y = hdf5data.read(trained_level1.hdf5_root / spec.key / "test.h5")
        net.setInput(x)
        out = net.forward()
        assert out.shape == (len(x), spec.n_outputs)
        assert np.isfinite(out).all()
        # crop-relative points near their targets (test_training_loss_falls checks that the
        # nets beat the best constant; this checks OpenCV reads the weights, not garbage)
        assert np.abs(out - y).mean() < 0.06
        assert out.min() > -0.5 and out.max() < 1.5


@pytest.mark.caffe
def test_resume_after_sigterm(tmp_path, level1_hdf5):
    """SIGTERM to model.train: Caffe snapshots and stops; the same command resumes from the
    .solverstate instead of starting again at iteration 0."""
    model_root, log_dir = tmp_path / "model", tmp_path / "log"
    args = ["--nets", "F1", "--iters", "150", "--snapshot", "40", "--model-root", model_root,
            "--hdf5-root", level1_hdf5, "--log-dir", log_dir]
    cmd = [sys.executable, "-m", "model.train", *map(str, args)]
    snapshots = model_root / "1_F1" / "snapshots"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not list(snapshots.glob("*.solverstate")):
            assert proc.poll() is None, "model.train ended before its first snapshot:\n" + proc.stdout.read()
            assert time.time() < deadline, "no snapshot after 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "interrupted" in out, out
    assert not (model_root / "1_F1" / "weights.caffemodel").exists()
    stopped = segments(log_dir / "1_F1.log")[-1]
    assert "Optimization stopped early" in stopped
    # Caffe snapshotted where it stopped
    last = max(int(re.search(r"_iter_(\d+)\.", p.name).group(1)) for p in snapshots.glob("*.solverstate"))
    assert 40 <= last < 150

    second = run_module("model.train", *args)
    assert "[1_F1] done: 150 iterations" in second.stdout
    runs = segments(log_dir / "1_F1.log")
    assert len(runs) == 2
    resumed = runs[1]
    assert f"--snapshot={snapshots / f'1_F1_iter_{last}.solverstate'}" in resumed.splitlines()[0]
    assert f"Resuming from {snapshots / f'1_F1_iter_{last}.solverstate'}" in resumed
    rows = caffelog.parse(resumed)
    assert rows and min(r.iteration for r in rows) > 0, "the resumed run started again at iteration 0"
    assert "Iteration 0," not in resumed and "Iteration 0 (" not in resumed
    assert rows[-1].iteration == 150
    # snapshots of the second run continue the count past the first run's
    saved = re.findall(r"Snapshotting solver state to binary proto file \S+_iter_(\d+)\.solverstate", resumed)
    assert saved and int(saved[0]) > last
    assert (model_root / "1_F1" / "weights.caffemodel").is_file()
    save_artifact(log_dir / "1_F1.log", "resume_1_F1.log")


@pytest.mark.caffe
def test_diverged_net_restarts_with_new_seed_then_gives_up(tmp_path, level1_hdf5):
    model_root, log_dir = tmp_path / "model", tmp_path / "log"
    proc = run_module("model.train", "--nets", "F1", "--iters", "30", "--lr", "1e6", "--retries", "1",
                      "--model-root", model_root, "--hdf5-root", level1_hdf5, "--log-dir", log_dir,
                      check=False)
    out = proc.stdout
    assert proc.returncode != 0, out
    seed = settings_for(1).seed
    assert f"restarting from scratch with seed {seed + 1000} (1/1)" in out, out
    assert "giving up" in out and "diverged" in out
    assert "[1_F1] FAILED: diverged" in out and "not finished: 1_F1" in out
    runs = segments(log_dir / "1_F1.log")
    assert len(runs) == 2  # the first run and exactly --retries restarts
    assert f"(seed {seed}," in runs[0].splitlines()[0] and f"(seed {seed + 1000}," in runs[1].splitlines()[0]
    assert f"random_seed: {seed + 1000}" in (model_root / "1_F1" / "solver.prototxt").read_text()
    for run in runs:
        assert caffelog.diverged(caffelog.parse(run)) is not None
        assert "Resuming from" not in run  # a restart starts from scratch
    assert not (model_root / "1_F1" / "weights.caffemodel").exists()


@pytest.mark.caffe
def test_abs_tanh_variant_trains_and_runs_in_opencv(tmp_path, level1_hdf5):
    """The paper's activation, abs(tanh): Caffe's AbsVal cannot run in place, so the template
    gives it its own blob; the net must train in Caffe and load in OpenCV."""
    model_root, log_dir = tmp_path / "model", tmp_path / "log"
    run_module("model.train", "--nets", "EN1", "--act", "abstanh", "--iters", "60", "--model-root", model_root,
               "--hdf5-root", level1_hdf5, "--log-dir", log_dir)
    deploy = model_root / "1_EN1" / "deploy.prototxt"
    text = deploy.read_text()
    assert 'type: "AbsVal" bottom: "conv1_pre" top: "conv1"' in text and 'type: "ReLU"' not in text
    rows = caffelog.parse_file(log_dir / "1_EN1.log")
    assert rows and all(r.train_loss is None or np.isfinite(r.train_loss) for r in rows)
    net = cv2.dnn.readNetFromCaffe(str(deploy), str(model_root / "1_EN1" / "weights.caffemodel"))
    net.setInput(np.random.default_rng(0).standard_normal((3, 1, 31, 39)).astype(np.float32))
    out = net.forward()
    assert out.shape == (3, 6) and np.isfinite(out).all()


def test_warm_restart_starts_from_trained_weights(tmp_path, trained_level1):
    """--init-from: a new schedule that starts from trained weights, not from random ones."""
    model_root, log_dir = tmp_path / "model", tmp_path / "log"
    run_module("model.train", "--nets", "NM1", "--iters", "20", "--init-from", trained_level1.model_root,
               "--model-root", model_root, "--hdf5-root", trained_level1.hdf5_root, "--log-dir", log_dir)
    text = (log_dir / "1_NM1.log").read_text()
    assert f"--weights={trained_level1.model_root / '1_NM1' / 'weights.caffemodel'}" in text
    first_warm = caffelog.parse(text)[0]
    assert first_warm.iteration == 0
    trained_rows = caffelog.parse_file(trained_level1.log_dir / "1_NM1.log")
    first_cold = trained_rows[0].train_loss
    last_trained = [r.train_loss for r in trained_rows if r.train_loss is not None][-1]
    # The warm start's first loss is the trained net's, far below a random start's.
    assert first_warm.train_loss < 0.5 * first_cold
    assert first_warm.train_loss < 3 * last_trained
    assert (model_root / "1_NM1" / "weights.caffemodel").is_file()


@pytest.mark.caffe
def test_init_from_without_weights_is_a_clear_error(tmp_path, level1_hdf5):
    proc = run_module("model.train", "--nets", "F1", "--init-from", tmp_path / "nothing",
                      "--model-root", tmp_path / "m", "--hdf5-root", level1_hdf5, "--log-dir", tmp_path / "l",
                      check=False)
    assert proc.returncode != 0 and "has no weights for 1_F1" in proc.stderr


def test_level3_nets_start_from_level2_nets_of_their_point(tmp_path):
    """The table's starts_from: each level-3 net from the level-2 net of the same point, patch
    rank and layer shapes (trained in --model-root); --random-init and --init-from override it."""
    from argparse import Namespace
    from common.nets import NETS, by_name
    from model.train import start_weights
    for spec in NETS:
        if spec.level == 3:
            start = by_name(spec.starts_from)
            assert (start.level, start.points, start.template, start.name[-1]) == (2, spec.points, spec.template,
                                                                                    spec.name[-1])
        else:
            assert spec.starts_from is None
    args = Namespace(init_from=None, random_init=False, model_root=tmp_path)
    assert start_weights(by_name("LE32"), args) == tmp_path / "2_LE22" / "weights.caffemodel"
    assert start_weights(by_name("LE22"), args) is None
    assert start_weights(by_name("LE32"), Namespace(init_from=None, random_init=True, model_root=tmp_path)) is None
    assert start_weights(by_name("LE32"), Namespace(init_from=tmp_path / "w", random_init=False,
                                                    model_root=tmp_path)) == tmp_path / "w" / "3_LE32" / "weights.caffemodel"


@pytest.mark.caffe
def test_level3_without_trained_level2_is_a_clear_error(tmp_path):
    proc = run_module("model.train", "--nets", "LE31", "RM32", "--model-root", tmp_path / "m",
                      "--hdf5-root", tmp_path / "h", "--log-dir", tmp_path / "l", check=False)
    assert proc.returncode != 0
    assert "LE21, RM22" in proc.stderr and "train level 2" in proc.stderr and "--random-init" in proc.stderr
    assert "Traceback" not in proc.stderr
