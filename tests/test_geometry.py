"""Box geometry: projection and back-projection agree with what Box.crop actually puts where,
with and without rotation, inside and outside the image; mirroring; rotation on a real face."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.box import Box
from common.netinputs import crop_box, net_input
from common.nets import MIRROR_ORDER, by_name, of_level


def blob_image(h: int, w: int, center, sigma: float) -> np.ndarray:
    """float32 image, zero except a Gaussian dot of peak 255 at sub-pixel `center` (x, y)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    d2 = (xx - center[0]) ** 2 + (yy - center[1]) ** 2
    return (255.0 * np.exp(-d2 / (2 * sigma ** 2))).astype(np.float32)


def centroid(img: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre (x, y) in pixel coordinates (pixel centres at integers)."""
    w = np.clip(img.astype(np.float64), 0, None)
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


# --- projection -------------------------------------------------------------------------

def test_relative_absolute_round_trip():
    box = Box(37.0, 121.0, 52.0, 150.0)
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 200, (20, 2))
    np.testing.assert_allclose(box.to_absolute(box.to_relative(pts)), pts, atol=1e-9)
    corners = np.array([[37.0, 52.0], [121.0, 150.0], [79.0, 101.0]])
    np.testing.assert_allclose(box.to_relative(corners), [[0, 0], [1, 1], [0.5, 0.5]], atol=1e-12)


def test_relative_with_angle_is_rotation_about_box_center():
    box = Box(40.0, 120.0, 30.0, 130.0)
    pts = np.array([[60.0, 70.0], [100.0, 72.0], [80.0, 125.0]])
    for angle in (-17.0, 9.0, 90.0):
        m = cv2.getRotationMatrix2D(box.center, angle, 1.0)
        rotated = pts @ m[:, :2].T + m[:, 2]
        np.testing.assert_allclose(box.to_absolute(box.to_relative(pts, angle)), rotated, atol=1e-9)
    # 90 degrees counter-clockwise (y down): a point right of the centre goes above it.
    above = box.to_absolute(box.to_relative(np.array([[100.0, 80.0]]), 90.0))[0]
    np.testing.assert_allclose(above, [80.0, 60.0], atol=1e-9)
    # the box centre does not move
    np.testing.assert_allclose(box.to_relative(np.array([box.center]), 33.0), [[0.5, 0.5]], atol=1e-12)


# --- crops put a dot where the projection says ----------------------------------------------

CASES = [
    # box (left, right, top, bottom), out (w, h), angle, dot (x, y)
    ((50.0, 150.0, 40.0, 140.0), (39, 39), 0.0, (83.3, 71.7)),      # shrink 100 -> 39
    ((30.0, 150.0, 60.0, 150.0), (39, 31), 0.0, (101.2, 97.4)),     # not square: 31 rows x 39 cols
    ((90.5, 110.5, 80.0, 100.0), (39, 39), 0.0, (97.25, 93.6)),     # enlarge 20 -> 39
    ((50.0, 150.0, 40.0, 140.0), (39, 39), 12.0, (83.3, 71.7)),     # rotated
    ((30.0, 150.0, 60.0, 150.0), (39, 31), -20.0, (70.0, 120.0)),
    ((60.0, 100.0, 50.0, 90.0), (15, 15), 7.5, (85.1, 62.2)),
]


@pytest.mark.parametrize("box_t, out, angle, dot", CASES)
def test_crop_puts_dot_where_projection_says(box_t, out, angle, dot):
    box = Box(*box_t)
    out_w, out_h = out
    # dot about 1.5 crop pixels wide, so it survives the shrink and stays inside the crop
    sigma = 1.5 * box.width / out_w
    img = blob_image(200, 240, dot, sigma)
    crop = box.crop(img, out_w, out_h, angle)
    assert crop.shape == (out_h, out_w)
    expected = box.to_relative(np.array([dot]), angle)[0] * (out_w, out_h) - 0.5
    found = centroid(crop)
    np.testing.assert_allclose(found, expected, atol=0.1)
    # ... and back-projection of the found position returns the dot (no rotation case)
    if angle == 0.0:
        back = box.to_absolute(((found + 0.5) / (out_w, out_h))[None])[0]
        np.testing.assert_allclose(back, dot, atol=0.1 * box.width / out_w + 1e-6)


def ramp(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return 40.0 + 0.5 * xx + 0.3 * yy


@pytest.mark.parametrize("angle", [0.0, 10.0])
def test_crop_leaving_image_is_padded_not_shifted(angle):
    h, w = 120, 160
    # box sticks out left and top; no resize step (box smaller than the crop) so the
    # padding can be checked exactly
    box = Box(-12.0, 20.0, -8.0, 18.0)
    out_w, out_h = 39, 31
    dot = (6.0, 5.0)
    bg = ramp(h, w)
    sigma = 1.2 * box.width / out_w
    blob = blob_image(h, w, dot, sigma)
    crop = box.crop(bg + blob, out_w, out_h, angle)
    assert crop.shape == (out_h, out_w)
    # the dot sits where the projection says: the box was not moved to fit the image
    only_dot = crop - box.crop(bg, out_w, out_h, angle)
    expected = box.to_relative(np.array([dot]), angle)[0] * (out_w, out_h) - 0.5
    np.testing.assert_allclose(centroid(only_dot), expected, atol=0.1)
    # every pixel repeats the nearest border pixel: the ramp at the clamped source position
    inv = cv2.invertAffineTransform(box.affine(out_w, out_h, angle))
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
    sx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    sy = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    outside = (sx < 0) | (sy < 0)
    assert outside.mean() > 0.3, "the test box should leave the image"
    want = 40.0 + 0.5 * np.clip(sx, 0, w - 1) + 0.3 * np.clip(sy, 0, h - 1)
    np.testing.assert_allclose(box.crop(bg, out_w, out_h, angle), want, atol=0.02)


def test_large_crop_leaving_image_keeps_size_and_position():
    h, w = 100, 100
    box = Box(-40.0, 80.0, 30.0, 150.0)   # 120 px box, shrunk to 39: leaves the image left and bottom
    dot = (30.0, 60.0)
    bg = ramp(h, w)
    blob = blob_image(h, w, dot, 1.5 * box.width / 39)
    crop = box.crop(bg + blob, 39, 39)
    assert crop.shape == (39, 39)
    expected = box.to_relative(np.array([dot]))[0] * 39 - 0.5
    np.testing.assert_allclose(centroid(crop - box.crop(bg, 39, 39)), expected, atol=0.1)
    # replicated border, not black: nothing darker than the ramp's darkest pixel
    assert crop.min() >= bg.min() - 1e-3


# --- level-1 crop shapes ------------------------------------------------------------------------

def test_level1_inputs_have_paper_shapes(test_faces):
    face = test_faces[0]
    gray = face.load_gray()
    shapes = {}
    for spec in of_level(1):
        x = net_input(gray, crop_box(spec, face.box), spec)
        shapes[spec.name] = x.shape
        assert x.dtype == np.float32
        assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-3  # standardised
    assert shapes == {"F1": (39, 39), "EN1": (31, 39), "NM1": (31, 39)}


# --- mirroring ---------------------------------------------------------------------------------

def test_mirrored_swaps_left_right_and_flips_x(test_faces):
    face = test_faces[3]
    w = face.load_gray().shape[1]
    m = face.mirrored(w)
    assert MIRROR_ORDER == (1, 0, 2, 4, 3)
    # LE <-> RE and LM <-> RM swap, N stays; x -> W - 1 - x, y unchanged
    for new, old in enumerate(MIRROR_ORDER):
        np.testing.assert_allclose(m.points[new], [w - 1 - face.points[old][0], face.points[old][1]])
    assert m.box == Box(w - 1 - face.box.right, w - 1 - face.box.left, face.box.top, face.box.bottom)
    # "left" keeps meaning the smaller x after the swap
    assert m.points[0][0] < m.points[1][0] and m.points[3][0] < m.points[4][0]
    twice = m.mirrored(w)
    np.testing.assert_allclose(twice.points, face.points, atol=1e-12)
    assert twice.box == face.box


def test_mirror_points_is_what_face_mirroring_does_to_points(test_faces):
    """dataset/build.py mirrors the previous level's estimates with the same function."""
    from common.listfile import mirror_points
    face = test_faces[3]
    w = face.load_gray().shape[1]
    estimates = face.points + 0.25
    mirrored = mirror_points(estimates, w)
    assert np.array_equal(face.mirrored(w).points, mirror_points(face.points, w))
    assert np.array_equal(mirrored[0], [w - 1 - estimates[1][0], estimates[1][1]])
    assert np.array_equal(estimates, face.points + 0.25)  # the input is left as it was


def test_from_xywh_scales_edges_as_plain_multiples():
    assert Box.from_xywh(10, 20, 30, 40) == Box(10, 40, 20, 60)
    # found in a copy shrunk 2x across and 4x down: the edges, not the pixel centres, scale
    assert Box.from_xywh(10, 20, 30, 40, 2.0, 4.0) == Box(20, 80, 80, 240)


def test_mirrored_points_land_on_the_same_pixels_of_the_flipped_image(test_faces):
    face = test_faces[5]
    gray = face.load_gray().astype(np.float32)
    w = gray.shape[1]
    flipped = gray[:, ::-1].copy()
    m = face.mirrored(w)
    half = 0.1 * face.box.width
    for new, old in enumerate(MIRROR_ORDER):
        orig = Box.around(*face.points[old], half, half).crop(gray, 15, 15)
        mirr = Box.around(*m.points[new], half, half).crop(flipped, 15, 15)
        np.testing.assert_allclose(mirr, orig[:, ::-1], atol=0.05)


# --- rotation on a real face: the points stay on their features ------------------------------------

def rotated_patches(face, angle: float, wrong: str | None = None):
    """(patch around LE in the unrotated image, patch around the projected LE in the rotated
    face crop, that patch rotated back), all 15x15 about 0.16 box widths wide."""
    gray = face.load_gray()
    fbox = crop_box(by_name("F1"), face.box)
    size = int(round(fbox.width))              # about the image's own resolution
    scale = size / fbox.width
    rotated = fbox.crop(gray, size, size, angle)
    le = face.points[0]
    use_angle = {None: angle, "unrotated": 0.0, "opposite": -angle}[wrong]
    at = fbox.to_relative(le[None], use_angle)[0] * size - 0.5
    half = 0.08 * face.box.width
    patch = Box.around(*at, half * scale, half * scale).crop(rotated, 15, 15)
    plain = Box.around(*le, half, half).crop(gray, 15, 15)
    plain_rotated = Box.around(*le, half, half).crop(gray, 15, 15, angle)
    return plain, patch, plain_rotated


@pytest.mark.parametrize("angle", [15.0, -15.0])
def test_rotation_keeps_left_eye_on_the_eye(test_faces, angle):
    faces = test_faces[:10]
    good, good_unrot, wrong0, wrong_sign = [], [], [], []
    for f in faces:
        plain, patch, plain_rot = rotated_patches(f, angle)
        good.append(corr(plain_rot, patch))
        good_unrot.append(corr(plain, patch))
        wrong0.append(corr(plain_rot, rotated_patches(f, angle, "unrotated")[1]))
        wrong_sign.append(corr(plain_rot, rotated_patches(f, angle, "opposite")[1]))
    # Same feature: the patch rotated about the eye itself is (up to resampling) the patch in the
    # rotated crop at the projected point; the unrotated patch still correlates strongly.
    assert min(good) > 0.95, good
    assert np.mean(good_unrot) > 0.75, good_unrot
    # Wrong positions (projection without the rotation, or with the opposite angle) do not.
    assert np.mean(wrong0) < np.mean(good_unrot) - 0.3, (wrong0, good_unrot)
    assert np.mean(wrong_sign) < np.mean(good_unrot) - 0.3, (wrong_sign, good_unrot)


# --- the vector form, Boxes -----------------------------------------------------------------
def test_boxes_do_box_arithmetic_bit_for_bit(test_faces):
    """Boxes (whole batches) gives exactly Box's numbers: sub-regions, patches, back-projection
    and the crops themselves, for level-1 regions and level-2/3 patches."""
    from common.box import Boxes
    from common.netinputs import crop_boxes, standardise, standardise_all
    from conftest import odd_boxes
    gray = test_faces[0].load_gray()
    boxes = odd_boxes(gray.shape[1], gray.shape[0])
    faces = Boxes.of(boxes)
    rng = np.random.default_rng(1)
    estimates = np.stack([b.to_absolute(rng.uniform(0, 1, (5, 2))) for b in boxes])
    for level in (1, 2, 3):
        specs = of_level(level)
        batch = crop_boxes(specs, faces, estimates if level > 1 else None)  # (K, N)
        assert batch.left.shape == (len(specs), len(boxes))
        for k, spec in enumerate(specs):
            alone = [crop_box(spec, b, None if level == 1 else est[spec.point_indices[0]])
                     for b, est in zip(boxes, estimates)]
            assert [batch[k].box(i) for i in range(len(boxes))] == alone, spec.name
            crops = batch[k].crops([gray] * len(boxes), spec.width, spec.height)
            ref = np.stack([b.crop(gray, spec.width, spec.height) for b in alone])
            assert crops.dtype == np.uint8 and np.array_equal(crops, ref), spec.name
            np.testing.assert_allclose(standardise_all(crops), np.stack([standardise(c) for c in ref]),
                                       rtol=0, atol=1e-5)
            rel = rng.uniform(-0.2, 1.2, (len(boxes), len(spec.points), 2))
            np.testing.assert_array_equal(batch[k].to_absolute(rel),
                                          np.stack([b.to_absolute(r) for b, r in zip(alone, rel)]))


def test_boxes_project_turned_points_as_box_does():
    """Boxes.to_relative with angles: Box.to_relative's numbers, bit for bit."""
    from common.box import Boxes
    rng = np.random.default_rng(4)
    boxes = [Box(x, x + w, y, y + w * 1.1) for x, y, w in rng.uniform([-20, -20, 5], [200, 200, 150], (60, 3))]
    angles = rng.uniform(-12, 12, len(boxes))
    angles[::5] = 0.0
    points = rng.uniform(-50, 300, (len(boxes), 3, 2))
    got = Boxes.of(boxes).to_relative(points, angles)
    want = np.stack([b.to_relative(p, a) for b, p, a in zip(boxes, points, angles)])
    np.testing.assert_array_equal(got, want)


def test_boxes_crops_share_work_among_threads_alike(test_faces):
    from concurrent.futures import ThreadPoolExecutor

    from common.box import CROPS_PER_TASK, Boxes
    from conftest import odd_boxes
    gray = test_faces[1].load_gray()
    boxes = Boxes.of(odd_boxes(gray.shape[1], gray.shape[0], n=3 * CROPS_PER_TASK + 5, seed=2))
    with ThreadPoolExecutor(2) as pool:
        threaded = boxes.crops([gray] * len(boxes), 15, 15, pool)
    np.testing.assert_array_equal(threaded, boxes.crops([gray] * len(boxes), 15, 15))


def test_moved_shifts_and_scales_each_axis():
    b = Box(0, 100, 0, 200).moved(0.1, -0.05, 1.2, 0.9)
    assert b.center == pytest.approx((60.0, 90.0))
    assert (b.width, b.height) == pytest.approx((120.0, 180.0))
    assert Box(0, 100, 0, 200).moved(0, 0, 1.5) == Box(-25, 125, -50, 250)
