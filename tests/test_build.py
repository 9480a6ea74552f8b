"""dataset/build.py: what goes into the training files of the patch nets."""
from __future__ import annotations

import logging

import h5py
import numpy as np

from common.nets import by_name
from conftest import run_module
from dataset.build import _within_patch


def test_patch_samples_far_outside_the_patch_are_left_out(caplog):
    x = np.zeros((4, 1, 15, 15), np.float32)
    y = np.array([[0.5, 0.5], [1.49, -0.49], [1.6, 0.5], [0.5, -0.7]], np.float32)
    with caplog.at_level(logging.INFO, logger="dataset.build"):
        kx, ky = _within_patch(by_name("LE31"), x, y, "train")
    assert len(kx) == 2 and np.array_equal(ky, y[:2])
    assert "left out 2 of 4" in caplog.text


def test_level1_samples_are_kept_whatever_their_targets():
    x = np.zeros((2, 1, 39, 39), np.float32)
    y = np.full((2, 10), 1.8, np.float32)
    kx, ky = _within_patch(by_name("F1"), x, y, "train")
    assert len(kx) == 2


def test_level1_without_jitter_gives_only_originals_and_mirrors(tmp_path, sample_dir):
    """With --angle/--shift/--scale 0 every random variant is the original crop or its mirror:
    the jitter flags reach the sampler and nothing else moves the crop."""
    run_module("dataset.level1", "--data", sample_dir, "--hdf5-root", tmp_path, "--limit", 4,
               "--variants", 6, "--angle", 0, "--shift", 0, "--scale", 0)
    with h5py.File(tmp_path / "1_F1" / "train.h5") as f:
        x, y = f["data"][:], f["landmark"][:]
    assert len(x) == 24
    # 4 faces -> 4 distinct originals + 4 distinct mirrors, whatever the shuffle
    assert len(np.unique(np.round(y, 5), axis=0)) == 8
    assert len(np.unique(np.round(x.reshape(len(x), -1), 4), axis=0)) == 8


def test_level1_jitter_makes_distinct_variants(tmp_path, sample_dir):
    run_module("dataset.level1", "--data", sample_dir, "--hdf5-root", tmp_path, "--limit", 4,
               "--variants", 6, "--angle", 10, "--shift", 0.04, "--scale", 0.05)
    with h5py.File(tmp_path / "1_F1" / "train.h5") as f:
        y = f["landmark"][:]
    assert len(np.unique(np.round(y, 5), axis=0)) == 24
