"""common/cropkernel.c: the batch crops cut in C are OpenCV's pixels (Box.crop), byte for byte,
for every kind of box and image, turned or not; what it cannot read goes through OpenCV; the
set-up builds it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from common import cropkernel
from common.box import Box, Boxes
from common.paths import ROOT


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the set-up warned and the crops go through OpenCV")
def test_the_set_up_built_the_crop_kernel():
    assert cropkernel.load() is not None, "common/cropkernel.c is not built: run scripts/setup.sh"
    path, fresh = cropkernel.build()
    assert path == cropkernel.library_path() and not fresh  # a second build only checks


def random_case(rng, images: int = 40, per_image: int = 12):
    """Images of many shapes (a single row or column, a view with a row step) and boxes inside,
    across every edge, tinier than a pixel and far larger than the image."""
    shapes = [(1, 1), (1, 57), (63, 1)] + [tuple(rng.integers(2, 320, 2)) for _ in range(images)]
    imgs = [cv2.GaussianBlur(rng.integers(0, 256, s, dtype=np.uint8), (0, 0), 1.2) if min(s) > 1
            else rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]
    imgs.append(rng.integers(0, 256, (400, 500), dtype=np.uint8)[37:311, 11:420])
    listed, boxes = [], []
    for im in imgs:
        h, w = im.shape
        for _ in range(per_image):
            bw, bh = rng.uniform(0.3, 2.2 * w + 5), rng.uniform(0.3, 2.2 * h + 5)
            left, top = rng.uniform(-bw, w + 1), rng.uniform(-bh, h + 1)
            listed.append(im)
            boxes.append(Box(left, left + bw, top, top + bh))
    return listed, boxes


@pytest.mark.parametrize("out_w, out_h", [(15, 15), (39, 39), (31, 39), (1, 1), (7, 3)])
def test_kernel_cuts_opencvs_pixels(out_w, out_h):
    rng = np.random.default_rng(out_w * 100 + out_h)
    listed, boxes = random_case(rng)
    # cuts whose size is a whole multiple of the output (OpenCV's other area code) and cuts
    # of exactly the output size (no shrink)
    for k in (1, 2, 3, 4, 6):
        boxes += [Box(3.2, 3.2 + out_w * k - 0.4, 1.7, 1.7 + out_h * k - 0.3),
                  Box(-5.5, -5.5 + out_w * k, 2.25, 2.25 + out_h * (k + 1))]
        listed += [listed[-1], listed[-2]]
    got = Boxes.of(boxes).crops(listed, out_w, out_h)
    want = np.stack([b.crop(im, out_w, out_h) for b, im in zip(boxes, listed)])
    assert got.dtype == np.uint8
    assert np.array_equal(got, want), f"{(got != want).any(axis=(1, 2)).sum()} of {len(boxes)} crops differ"
    cropkernel.enable(False)
    try:
        assert np.array_equal(Boxes.of(boxes).crops(listed, out_w, out_h), want)  # OpenCV's batches
    finally:
        cropkernel.enable(True)


@pytest.mark.parametrize("out_w, out_h", [(15, 15), (39, 39), (31, 39)])
def test_kernel_cuts_opencvs_turned_crops(out_w, out_h):
    """Training crops are turned about their box centre (dataset/): the same bytes as
    Box.crop with that angle, and Boxes' rotation matrices are Box's."""
    rng = np.random.default_rng(out_w + 7 * out_h)
    listed, boxes = random_case(rng, images=25, per_image=8)
    angles = rng.uniform(-15, 15, len(boxes))
    angles[::7] = 0.0  # unturned ones among them
    batch = Boxes.of(boxes)
    rotations = batch.rotations(angles)
    assert all(np.array_equal(rotations[i], b.rotation(a)) for i, (b, a) in enumerate(zip(boxes, angles)))
    got = batch.crops(listed, out_w, out_h, rotations=rotations)
    want = np.stack([b.crop(im, out_w, out_h, a) for b, im, a in zip(boxes, listed, angles)])
    assert np.array_equal(got, want), f"{(got != want).any(axis=(1, 2)).sum()} of {len(boxes)} crops differ"
    cropkernel.enable(False)
    try:
        assert np.array_equal(batch.crops(listed, out_w, out_h, rotations=rotations), want)
    finally:
        cropkernel.enable(True)


def test_cuts_at_a_lower_resolution_than_the_box():
    """Matrices that shrink while cutting (Box.crop never makes them; the loop takes any): taps
    far apart go pixel by pixel, still warpAffine's pixels."""
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (200, 300), dtype=np.uint8), (0, 0), 1.5)
    sources = cropkernel.SourceImages([img] * 6)
    scales = np.array([0.1, 0.2, 0.24, 0.26, 0.5, 1.0])
    mats = np.zeros((6, 2, 3))
    mats[:, 0, 0], mats[:, 1, 1] = scales, scales * 1.1
    mats[:, 0, 2], mats[:, 1, 2] = rng.uniform(-20, 5, 6), rng.uniform(-20, 5, 6)
    mid_w, mid_h = np.full(6, 40, dtype=np.intc), np.full(6, 30, dtype=np.intc)
    out = np.zeros((6, 15, 20), np.uint8)
    cropkernel.cut(sources, 0, 6, mats, mid_w, mid_h, out)
    for m, got in zip(mats, out):
        cut = cv2.warpAffine(img, m, (40, 30), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        assert np.array_equal(got, cv2.resize(cut, (20, 15), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def scalar_kernel(tmp_path_factory):
    """The same source built without its SSE2 loops (-DDL_NO_SIMD): what an ARM machine runs."""
    path = tmp_path_factory.mktemp("scalar") / "cropkernel-scalar.so"
    subprocess.run(["cc", *cropkernel.CFLAGS, "-DDL_NO_SIMD", "-o", str(path), str(cropkernel.SOURCE), "-lm"],
                   check=True)
    return cropkernel.load_library(path)


@pytest.mark.parametrize("turned", [False, True])
def test_the_scalar_build_cuts_the_same_bytes(scalar_kernel, monkeypatch, turned):
    rng = np.random.default_rng(11 + turned)
    listed, boxes = random_case(rng, images=25, per_image=8)
    batch = Boxes.of(boxes)
    rotations = batch.rotations(rng.uniform(-15, 15, len(boxes))) if turned else None
    for out_w, out_h in [(15, 15), (39, 39), (31, 39)]:
        want = batch.crops(listed, out_w, out_h, rotations=rotations)
        with monkeypatch.context() as m:
            m.setattr(cropkernel, "load", lambda: scalar_kernel)
            got = batch.crops(listed, out_w, out_h, rotations=rotations)
        assert np.array_equal(got, want), f"{(got != want).any(axis=(1, 2)).sum()} of {len(boxes)} crops differ"


def test_images_the_kernel_cannot_read_go_through_opencv():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    boxes = [Box(10.5, 90.2, 5.1, 80.7), Box(-20, 30, 100, 150)]
    for other in (img.astype(np.float32), img[:, ::2], np.dstack([img, img, img])[:, :, 0]):
        from common.cropkernel import SourceImages
        assert not SourceImages([other]).native
        got = Boxes.of(boxes).crops([other] * 2, 15, 15)
        assert np.array_equal(got, np.stack([b.crop(other, 15, 15) for b in boxes]))


def test_turned_off_by_the_environment():
    env = dict(os.environ, DEEP_LANDMARK_OPENCV_CROPS="1")
    out = subprocess.run([sys.executable, "-m", "common.cropkernel"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "turned off" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-m", "common.cropkernel"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "in use" in out.stdout, out.stdout + out.stderr


# --- the fallback: without the kernel the crops go through OpenCV, and nothing else changes ---
def test_a_failed_compile_is_a_warning_naming_the_fallback(tmp_path, monkeypatch, capsys):
    """What scripts/setup.sh prints as a warning (and goes on) when it cannot compile."""
    monkeypatch.setattr(cropkernel, "LIB_DIR", tmp_path)
    assert cropkernel.main(["--build", "--cc", "false"]) == 1
    err = capsys.readouterr().err
    assert "could not compile cropkernel.c with false" in err and "fall back to OpenCV" in err
    assert not list(tmp_path.iterdir())  # no partial library left to load


def test_without_the_kernel_the_landmarker_gives_the_same_points(tmp_path, monkeypatch):
    """The kernel not built (its folder empty) and turned off: the same points, to the bit, on
    sample photos, upright and turned (a rolled face's crops are cut from an upright copy)."""
    from common.landmarker import Landmarker
    from landmark_photos import GROUP, ONE_FACE, PAIR, read, rolled
    photos = [read(n) for n in (ONE_FACE, *PAIR, *GROUP)] + [rolled(ONE_FACE, 30)[0]]
    lm = Landmarker()
    with_kernel = [lm(p) for p in photos]
    assert cropkernel.load() is not None
    monkeypatch.setattr(cropkernel, "LIB_DIR", tmp_path)
    cropkernel._load.cache_clear()
    try:
        assert cropkernel.load() is None  # not built: common.box cuts with OpenCV
        without = [lm(p) for p in photos]
    finally:
        monkeypatch.undo()
        cropkernel._load.cache_clear()
    assert [len(f) for f in without] == [len(f) for f in with_kernel] and sum(map(len, without)) >= 7
    for a, b in zip(with_kernel, without):
        for fa, fb in zip(a, b):
            assert np.array_equal(fa.points, fb.points) and fa.box == fb.box


def test_predict_with_opencv_crops_prints_the_same_json():
    from landmark_photos import one_face_path
    args = [sys.executable, "-m", "common.predict", str(one_face_path()), "--json"]
    runs = [subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, DEEP_LANDMARK_OPENCV_CROPS=flag)) for flag in ("0", "1")]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-1000:] for r in runs]
    assert json.loads(runs[0].stdout) == json.loads(runs[1].stdout)
