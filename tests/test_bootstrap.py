"""./bootstrap.sh --quick: the whole pipeline (set-up, prototxt, data, Caffe training of all 23
nets, level-2/3 data from the previous levels' predictions, report) on the committed sample."""
from __future__ import annotations

import json
import os
import re
import subprocess

import numpy as np
import pytest

from common.nets import NETS
from common.paths import ROOT


@pytest.mark.caffe
@pytest.mark.slow
def test_quick_pipeline_end_to_end(tmp_path):
    out = tmp_path / "quick"
    # --patch-iters: levels 2-3 train 200 iterations, level 1 keeps --quick's 300.
    run = subprocess.run([str(ROOT / "bootstrap.sh"), "--quick", "--out", str(out), "--patch-iters", "200"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for spec in NETS:
        assert (out / "model" / spec.key / "weights.caffemodel").stat().st_size > 1000
        iters = 300 if spec.level == 1 else 200
        assert f"max_iter: {iters}\n" in (out / "model" / spec.key / "solver.prototxt").read_text()
        assert f"[{spec.key}] done: {iters} iterations" in run.stdout
        assert (out / "log" / f"{spec.key}.csv").is_file()
        # Level 3 starts from level 2's trained net of the same point (common/nets.py).
        start = f"--weights={out / 'model' / f'2_{spec.starts_from}' / 'weights.caffemodel'}"
        assert (start in (out / "log" / f"{spec.key}.log").read_text()) == (spec.level == 3)
    for level in (1, 2, 3):
        assert (out / "log" / f"level{level}.png").is_file()
        assert (out / "result" / f"level{level}_test.png").is_file()
    report = json.loads((out / "result" / "evaluation.json").read_text())
    assert set(report["levels"]) == {"F1", "1", "2", "3"}
    means = [report["levels"][k]["mean_error"] for k in "123"]
    assert all(0 < m < 0.2 for m in means), means
    assert "| **this project, level 3** |" in (out / "result" / "README.md").read_text()
    assert sorted(p.name for p in (out / "result" / "nets").glob("*.png")) == ["S0.png", "S1.png", "S2.png"]
    # The last line says where the time went, step by step.
    summary = re.search(r"^done in (\d+):(\d\d) min \((.*)\)\.$", run.stdout, re.M)
    assert summary, run.stdout[-1500:]
    steps = [part.split() for part in summary.group(3).split(", ")]
    assert [name for name, _ in steps] == ["setup", "prototxt", "data1", "train1", "data2", "train2",
                                           "data3", "train3", "report"]
    seconds = [int(t.split(":")[0]) * 60 + int(t.split(":")[1]) for _, t in steps]
    total = int(summary.group(1)) * 60 + int(summary.group(2))
    assert sum(seconds) <= total <= sum(seconds) + 5 and seconds[3] > 0

    # A second run finds everything done and says so.
    again = subprocess.run([str(ROOT / "bootstrap.sh"), "--quick", "--out", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("trained already") == len(NETS)
    assert "complete, skipped" in again.stdout


def test_patch_iters_must_be_a_number():
    run = subprocess.run([str(ROOT / "bootstrap.sh"), "--patch-iters", "20k"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--patch-iters needs a positive whole number" in run.stderr


def test_loss_must_be_known():
    run = subprocess.run([str(ROOT / "bootstrap.sh"), "--loss", "huber"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--loss is euclidean, distance or l1, not 'huber'" in run.stderr


def test_wear_must_be_a_share():
    run = subprocess.run([str(ROOT / "bootstrap.sh"), "--wear", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--wear needs a share between 0 and 1, not '2'" in run.stderr


def test_wear_reaches_the_training_data(tmp_path):
    """The release's recipe wears about half of level 1's random variants (dataset.build.WEAR);
    --wear 0 none of them; the targets are the same."""
    import h5py
    files = {}
    for flags in (["--wear", "0"], []):
        out = tmp_path / ("plain" if flags else "default")
        run = subprocess.run([str(ROOT / "bootstrap.sh"), "--quick", "--out", str(out), "--only", "data1", *flags],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        with h5py.File(out / "hdf5" / "1_F1" / "train.h5") as f:
            files[bool(flags)] = (f["data"][:], f["landmark"][:])
    (x0, y0), (x1, y1) = files[True], files[False]
    assert np.array_equal(y0, y1) and x0.shape == x1.shape
    assert 0.25 < np.mean([not np.array_equal(a, b) for a, b in zip(x0, x1)]) < 0.75


@pytest.mark.caffe
def test_loss_reaches_the_nets(tmp_path):
    """--loss reaches every net's training prototxt; the default is Caffe's EuclideanLoss."""
    for flags, wanted in (([], 'type: "EuclideanLoss"'), (["--loss", "distance"], 'name: "dist" type: "Power"')):
        out = tmp_path / (flags[-1] if flags else "default")
        run = subprocess.run([str(ROOT / "bootstrap.sh"), "--quick", "--out", str(out), "--only", "prototxt", *flags],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        for spec in NETS:
            assert wanted in (out / "model" / spec.key / "train.prototxt").read_text(), spec.key


def test_without_data_it_stops_at_once_saying_where_to_get_it_and_what_runs_now(tmp_path):
    """No --data, no $DEEP_LANDMARK_DATA, no dataset/train/ (here: --data names an empty
    folder, the same check): it stops before the set-up (no Caffe build to wait for), says
    where to get the data set, and that --quick runs the pipeline now on the sample."""
    env = {k: v for k, v in os.environ.items() if k != "DEEP_LANDMARK_DATA"}
    for args in ([], ["--data", str(tmp_path)]):
        if not args and (ROOT / "dataset" / "train" / "trainImageList.txt").is_file():
            continue  # this checkout has the data set
        run = subprocess.run([str(ROOT / "bootstrap.sh"), *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env=env)
        assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
        assert "=== setup" not in run.stdout
        assert "The CUHK 5-point data set was not found" in run.stderr
        assert "Deep Convolutional Network Cascade for Facial Point" in run.stderr
        assert "./bootstrap.sh --quick runs the whole pipeline now, on the sample" in run.stderr
