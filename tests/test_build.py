"""dataset/build.py: what goes into the training files of the patch nets."""
from __future__ import annotations

import logging

import h5py
import numpy as np
import pytest

from common.paths import RELEASED_MODEL
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
    """With --angle/--shift/--scale/--wear 0 every random variant is the original crop or its mirror:
    the jitter flags reach the sampler and nothing else moves the crop."""
    run_module("dataset.level1", "--data", sample_dir, "--hdf5-root", tmp_path, "--limit", 4,
               "--variants", 6, "--angle", 0, "--box-noise", "uniform", "--shift", 0, "--scale", 0, "--wear", 0)
    with h5py.File(tmp_path / "1_F1" / "train.h5") as f:
        x, y = f["data"][:], f["landmark"][:]
    assert len(x) == 24
    # 4 faces -> 4 distinct originals + 4 distinct mirrors, whatever the shuffle
    assert len(np.unique(np.round(y, 5), axis=0)) == 8
    assert len(np.unique(np.round(x.reshape(len(x), -1), 4), axis=0)) == 8


@pytest.mark.parametrize("noise", [["--box-noise", "uniform", "--shift", "0.04", "--scale", "0.05"], []])
def test_level1_jitter_makes_distinct_variants(tmp_path, sample_dir, noise):
    run_module("dataset.level1", "--data", sample_dir, "--hdf5-root", tmp_path, "--limit", 4,
               "--variants", 6, "--angle", 10, *noise)
    with h5py.File(tmp_path / "1_F1" / "train.h5") as f:
        y = f["landmark"][:]
    assert len(np.unique(np.round(y, 5), axis=0)) == 24


def test_measured_box_noise_has_the_measured_spread():
    """Level 1's default box noise is the detector's measured residual spread: draws of
    box_noise have its covariance (dx, dy, sx, sy), none beyond 3 standard deviations."""
    from common.boxrule import load_rule, rule_path
    from dataset.build import box_noise
    from dataset.level1 import measured_box_cov
    cov = np.array(measured_box_cov(rule_path("mtcnn")))
    assert cov.shape == (4, 4) and np.allclose(cov, cov.T) and (np.linalg.eigvalsh(cov) > 0).all()
    stds = np.array([load_rule(rule_path("mtcnn")).residual["train"][k]["std"] for k in ("dx", "dy", "sx", "sy")])
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), stds, rtol=1e-3)
    rng = np.random.default_rng(5)
    draws = np.array([box_noise(rng, cov) for _ in range(20000)]) - [0, 0, 1, 1]
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, rtol=0.08, atol=2e-5)
    assert (np.abs(draws) <= 3 * np.sqrt(np.diag(cov)) + 1e-9).all()
    assert (np.abs(draws).max(axis=0) > 2.5 * stds).all()  # the tails are drawn, up to the clip


def test_measured_box_noise_needs_a_measured_rule(tmp_path, sample_dir):
    import json
    from common.boxrule import rule_path
    data = json.loads(rule_path("mtcnn").read_text())
    del data["residual"]
    (tmp_path / "rule.json").write_text(json.dumps(data))
    proc = run_module("dataset.level1", "--data", sample_dir, "--hdf5-root", tmp_path / "h", "--limit", 2,
                      "--rule", tmp_path / "rule.json", check=False)
    assert proc.returncode != 0 and "common.boxrule_fit" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("angle, distinct", [(0, 8), (10, 24)])
def test_patch_level_takes_the_angle_flag(tmp_path, sample_dir, angle, distinct):
    """Level 2's patches (centred on the released level 1's estimates), without centre noise:
    with --angle 0 every random variant is the original or its mirror, with --angle 10 each is
    its own."""
    run_module("dataset.level2", "--data", sample_dir, "--model", RELEASED_MODEL, "--hdf5-root", tmp_path,
               "--limit", 4, "--variants", 6, "--angle", angle, "--center-sigma", 0)
    with h5py.File(tmp_path / "2_LE21" / "train.h5") as f:
        y = f["landmark"][:]
    assert len(y) == 24
    assert len(np.unique(np.round(y, 5), axis=0)) == distinct


@pytest.mark.parametrize("level", [1, 2])
def test_samples_are_the_crops_and_targets_of_their_variants(train_faces, level):
    """What build_arrays writes for each variant equals net_input and net_target of that
    variant's crop box, bit for bit: cutting and standardising a face's crops together (the
    fast path) changes no value."""
    from dataclasses import replace

    from common.netinputs import net_input, net_target
    from common.nets import of_level
    from dataset.build import Job, face_samples, face_variants
    from dataset.level1 import JITTER as JITTER1
    from dataset.level2 import JITTER as JITTER2
    # Without wear (tested on its own below): the crops are then of the photo itself.
    job = Job(tuple(of_level(level)), 6, replace(JITTER1 if level == 1 else JITTER2, wear=0.0), seed=3)
    rng = np.random.default_rng(0)
    for index, face in enumerate(train_faces[:3]):
        estimates = None if level == 1 else face.points + rng.normal(0, 2.0, (5, 2))
        gray = face.load_gray()
        samples = face_samples(job, index, face, estimates)
        variants = face_variants(job, index, face, estimates, gray.shape[1])
        assert [v.mirror for v in variants[:2]] == [False, True] and variants[2].angle != 0.0
        for spec in job.specs:
            x, y = samples[spec.key]
            assert x.shape == (6, spec.height, spec.width) and x.dtype == np.float32
            for v, var in enumerate(variants):
                image = gray[:, ::-1].copy() if var.mirror else gray
                points = face.mirrored(gray.shape[1]).points if var.mirror else face.points
                box = var.crop_boxes[spec.key]
                assert np.array_equal(x[v], net_input(image, box, spec, var.angle))
                assert np.array_equal(y[v], net_target(box, points, spec, var.angle))


def test_wear_changes_only_the_random_variants_photos(train_faces):
    """--wear P: about a share P of the random variants are cut from a worn copy of the photo;
    the face itself, its mirror, every target and every crop box stay as without wear, and the
    same seed wears the same variants the same way."""
    from dataclasses import replace

    from common.nets import of_level
    from dataset.build import Job, face_samples
    from dataset.level1 import JITTER
    specs = tuple(of_level(1))
    plain, worn = (Job(specs, 20, replace(JITTER, wear=w), seed=3) for w in (0.0, 0.5))
    changed = total = 0
    for index, face in enumerate(train_faces[:4]):
        a, b, again = (face_samples(job, index, face, None) for job in (plain, worn, worn))
        for spec in specs:
            (xa, ya), (xb, yb) = a[spec.key], b[spec.key]
            assert np.array_equal(ya, yb) and np.array_equal(xa[:2], xb[:2])
            assert np.array_equal(xb, again[spec.key][0])
        differs = [not np.array_equal(a["1_F1"][0][v], b["1_F1"][0][v]) for v in range(2, 20)]
        changed, total = changed + sum(differs), total + len(differs)
    assert 0.3 < changed / total < 0.7, f"{changed} of {total} random variants worn"


def test_training_pins_the_release_blas_kernels(monkeypatch):
    """model.train pins OpenBLAS's AVX2 kernels where the CPU has them (an AVX-512 CPU's own
    kernels round otherwise and train other weights than the release's), never overrides a
    user's choice, and leaves CPUs without AVX2 alone."""
    from model.train import RELEASE_BLAS_CORE, release_blas_kernels
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    avx512 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n"
    assert release_blas_kernels(avx512) == {"OPENBLAS_CORETYPE": RELEASE_BLAS_CORE} == {"OPENBLAS_CORETYPE": "Zen"}
    assert release_blas_kernels("flags\t\t: fpu sse2 sse4_2\n") == {}
    assert release_blas_kernels("") == {}
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert release_blas_kernels(avx512) == {}
