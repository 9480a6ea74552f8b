"""Rotations of the image plane, one home for them: the 2x3 matrix turning about a point, points
through a 2x3 matrix and back, a face's roll from its eye line, and an image turned on a canvas
that holds all of it.

Angles are degrees counter-clockwise as the image is shown (y points down), the convention of
cv2.getRotationMatrix2D; pixel centres are at integers. Box (common/box.py) turns the image
about its centre through `rotation_about`; everything else that turns goes through this module.
It imports nothing of the project, so the detectors can use it too.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

# cv2.rotate's exact pixel moves for the quarter turns (`rotate_image`).
_QUARTER_TURNS = {90.0: cv2.ROTATE_90_COUNTERCLOCKWISE, -90.0: cv2.ROTATE_90_CLOCKWISE,
                  270.0: cv2.ROTATE_90_CLOCKWISE, 180.0: cv2.ROTATE_180, -180.0: cv2.ROTATE_180}


def rotation_about(centre, angle: float, scale: float = 1.0, to=None) -> np.ndarray:
    """2x3 matrix turning the image by `angle` degrees and scaling it by `scale` about `centre`
    (x, y); with `to`, also moving `centre` to the point `to` (a chip cut around it)."""
    cx, cy = centre
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    if to is not None:
        m[0, 2] += to[0] - cx
        m[1, 2] += to[1] - cy
    return m


def transform(points, m: np.ndarray) -> np.ndarray:
    """Points (N, 2) through a 2x3 affine matrix."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    """The 2x3 affine matrix that undoes `m`."""
    return cv2.invertAffineTransform(m)


def footprint(m: np.ndarray, size: int, shape, pad: float) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the pixels of an image of `shape` that a size x size warp by `m`
    (image -> output) reads, widened by `pad` image pixels for the interpolation's taps and
    clipped to the image; None when the warp lies wholly outside it."""
    h, w = shape[:2]
    corners = np.array([[-1, -1], [size, -1], [size, size], [-1, size]], dtype=np.float64)
    back = transform(corners, invert(m))
    x0, y0 = (max(0, int(math.floor(v - pad))) for v in back.min(axis=0))
    x1 = min(w, int(math.ceil(back[:, 0].max() + pad)) + 1)
    y1 = min(h, int(math.ceil(back[:, 1].max() + pad)) + 1)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1)


def turn_points(points, centre, angle: float) -> np.ndarray:
    """Points (N, 2) turned by `angle` degrees about `centre`, with no translation term to round
    (the same turn as rotation_about's, computed about the centre)."""
    a = np.radians(angle)
    c, s = np.cos(a), np.sin(a)
    centre = np.asarray(centre, dtype=np.float64)
    # y points down: a counter-clockwise turn as shown is (x, y) -> (c x + s y, -s x + c y)
    rot = np.array([[c, s], [-s, c]])
    return (np.asarray(points, dtype=np.float64) - centre) @ rot.T + centre


def eye_roll(points) -> float:
    """The rotation (degrees, counter-clockwise) that makes the line from the left to the right
    eye (points 0 and 1) horizontal, the left eye on the left: 0 for an upright face."""
    (lx, ly), (rx, ry) = points[0], points[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def turned_canvas(image_shape, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """(2x3 matrix from image to turned pixels, (width, height) of the turned canvas that holds
    the whole image)."""
    h, w = image_shape[:2]
    a = math.radians(angle)
    c, s = abs(math.cos(a)), abs(math.sin(a))
    # Exact sizes for quarter turns (cos/sin are off by 1e-16 there).
    nw = int(round(w * c + h * s)) if angle % 90 else (w if angle % 180 == 0 else h)
    nh = int(round(w * s + h * c)) if angle % 90 else (h if angle % 180 == 0 else w)
    m = rotation_about(((w - 1) / 2.0, (h - 1) / 2.0), angle)
    m[0, 2] += (nw - w) / 2.0
    m[1, 2] += (nh - h) / 2.0
    return m, (nw, nh)


def rotate_image(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """(the image turned by `angle` on a canvas that holds all of it, the 2x3 matrix from image
    to turned pixels). Quarter turns are exact pixel moves."""
    m, size = turned_canvas(image.shape, angle)
    if angle == 0:
        return image, m
    if float(angle) in _QUARTER_TURNS:
        return cv2.rotate(image, _QUARTER_TURNS[float(angle)]), m
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT), m
