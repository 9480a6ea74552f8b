"""Photos and checks shared by test_detect, test_predict, test_webapp and test_browser.

Every photo comes from the committed sample (tests/data/sample/) or is made from it at test
time: one face, two faces side by side, a group of three, a region of a photo without a face.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from common.box import Box
from common.listfile import read_list
from common.nets import POINTS
from common.paths import SAMPLE_DATA, TEST_LIST

# Test-list faces (never trained on) that the Haar detector finds alone in their photos.
ONE_FACE = "lfw_5590/Abdullah_Ahmad_Badawi_0001.jpg"
PAIR = ("lfw_5590/Alicia_Hollowell_0001.jpg", "lfw_5590/Charlie_Zaa_0001.jpg")
# Test-list faces that MTCNN finds alone and upright in their photos (the screenshots' group).
GROUP = ("lfw_5590/Akhmed_Zakayev_0001.jpg", "lfw_5590/Alicia_Hollowell_0001.jpg",
         "lfw_5590/Bob_Eskridge_0001.jpg")


def listed(name: str):
    """The sample's test-list entry (image path, true box, true points) of an image."""
    for face in read_list(SAMPLE_DATA / TEST_LIST):
        if face.image_path == SAMPLE_DATA / name:
            return face
    raise AssertionError(f"{name} is not in {SAMPLE_DATA / TEST_LIST}")


def read(name: str) -> np.ndarray:
    img = cv2.imread(str(SAMPLE_DATA / name), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {SAMPLE_DATA / name}"
    return img


def one_face_path() -> Path:
    return SAMPLE_DATA / ONE_FACE


def two_faces() -> tuple[np.ndarray, list[Box]]:
    """Two sample photos side by side, and their listed face boxes in the joined image."""
    left, right = read(PAIR[0]), read(PAIR[1])
    assert left.shape[0] == right.shape[0], "the pair must have the same height"
    boxes = [listed(PAIR[0]).box]
    b = listed(PAIR[1]).box
    boxes.append(Box(b.left + left.shape[1], b.right + left.shape[1], b.top, b.bottom))
    return np.hstack([left, right]), boxes


def group(names: tuple[str, ...] = GROUP) -> tuple[np.ndarray, list[Box]]:
    """Sample photos side by side, each through a feathered round mask on a blurred faceless
    background (hard seams between photos make the detector see faces in them), and the
    listed face boxes in the joined image."""
    width = 20 + 260 * len(names)
    canvas = cv2.GaussianBlur(cv2.resize(no_face(), (width, 290)), (0, 0), 6)
    yy, xx = np.mgrid[:250, :250]
    mask = np.clip((105 - np.hypot(xx - 125, yy - 118)) / 15, 0, 1)[..., None]
    boxes = []
    for i, name in enumerate(names):
        x = 20 + 260 * i
        region = canvas[20:270, x:x + 250].astype(float)
        canvas[20:270, x:x + 250] = (read(name) * mask + region * (1 - mask)).astype(np.uint8)
        b = listed(name).box
        boxes.append(Box(b.left + x, b.right + x, b.top + 20, b.bottom + 20))
    return canvas, boxes


def no_face() -> np.ndarray:
    """A real photo region without a face (clothes and background below the chin), enlarged."""
    strip = read(ONE_FACE)[190:250]
    return cv2.resize(strip, (500, 120), interpolation=cv2.INTER_CUBIC)


def encode(img: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def as_box(d: dict) -> Box:
    return Box(d["left"], d["right"], d["top"], d["bottom"])


def check_face(box: Box, points) -> None:
    """What any decent model gives: five points inside the face box, in their natural layout."""
    if isinstance(points, dict):
        assert sorted(points) == sorted(POINTS), points
        points = np.array([points[p] for p in POINTS], dtype=float)
    pts = np.asarray(points, dtype=float)
    assert pts.shape == (5, 2) and np.isfinite(pts).all()
    for name, (x, y) in zip(POINTS, pts):
        assert box.left < x < box.right and box.top < y < box.bottom, \
            f"{name} ({x:.1f}, {y:.1f}) outside the face box {box}"
    le, re, n, lm, rm = pts
    assert le[0] < re[0] and lm[0] < rm[0], "left points must have the smaller x"
    assert max(le[1], re[1]) < min(lm[1], rm[1]), "eyes must be above the mouth"
    assert min(le[1], re[1]) < n[1] < max(lm[1], rm[1]), "nose must lie between eyes and mouth"


def mean_error(points, truth: np.ndarray, box: Box) -> float:
    """Mean point-to-truth distance in widths of the listed box (the paper's measure)."""
    if isinstance(points, dict):
        points = [points[p] for p in POINTS]
    return float(np.linalg.norm(np.asarray(points, float) - truth, axis=1).mean() / box.width)


def rolled(name: str, angle: float, margin: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    """A sample photo turned by `angle` degrees (counter-clockwise as shown) about its face, on
    a canvas `margin` times the photo's longer side, and the listed points moved with it."""
    face = listed(name)
    img = read(name)
    side = int(max(img.shape[:2]) * margin)
    cx, cy = face.box.center
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    m[:, 2] += (side / 2 - cx, side / 2 - cy)
    out = cv2.warpAffine(img, m, (side, side), borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    return out, np.c_[face.points, np.ones(5)] @ m.T


def small_in_large(name: str = ONE_FACE, face_px: int = 80, size=(2000, 1500)) -> tuple[np.ndarray, np.ndarray]:
    """A sample photo shrunk so its face box is `face_px` wide, placed on a large canvas of a
    blurred, enlarged copy of a faceless region; and the moved points."""
    face = listed(name)
    img = read(name)
    s = face_px / face.box.width
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = cv2.GaussianBlur(cv2.resize(no_face(), size, interpolation=cv2.INTER_LINEAR), (0, 0), 3)
    x0, y0 = size[0] * 2 // 3, size[1] // 3
    canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    pts = (face.points + 0.5) * s - 0.5 + (x0, y0)
    return canvas, pts


def inside_region(face, points: np.ndarray) -> bool:
    """Whether `points` (the eyes and the nose at least) lie in a found face's region, which
    is its box turned by -roll."""
    m = cv2.getRotationMatrix2D(face.box.center, face.roll, 1.0)
    pts = np.c_[np.asarray(points)[:3], np.ones(3)] @ m.T
    b = face.box
    return bool(((pts[:, 0] > b.left) & (pts[:, 0] < b.right) & (pts[:, 1] > b.top) & (pts[:, 1] < b.bottom)).all())
