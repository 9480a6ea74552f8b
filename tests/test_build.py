"""dataset/build.py: what goes into the training files of the patch nets."""
from __future__ import annotations

import numpy as np

from common.nets import by_name
from dataset.build import _within_patch


def test_patch_samples_far_outside_the_patch_are_left_out(capsys):
    x = np.zeros((4, 1, 15, 15), np.float32)
    y = np.array([[0.5, 0.5], [1.49, -0.49], [1.6, 0.5], [0.5, -0.7]], np.float32)
    kx, ky = _within_patch(by_name("LE31"), x, y, "train")
    assert len(kx) == 2 and np.array_equal(ky, y[:2])
    assert "left out 2 of 4" in capsys.readouterr().out


def test_level1_samples_are_kept_whatever_their_targets():
    x = np.zeros((2, 1, 39, 39), np.float32)
    y = np.full((2, 10), 1.8, np.float32)
    kx, ky = _within_patch(by_name("F1"), x, y, "train")
    assert len(kx) == 2
