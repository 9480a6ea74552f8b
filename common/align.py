"""Aligned face crops: a face warped onto the five-point template that face recognition,
clustering and expression models are trained on (ArcFace's, 112x112; other sizes scale it).

    matrix = align_matrix(points, 112)        # 2x3, photo pixels -> crop pixels
    crop = warp(image, matrix, 112)

The matrix is the least-squares similarity (rotation, one scale, shift; never a mirror) from
the five points onto the template (Umeyama 1991). Pixel centres are at integer coordinates, as
everywhere in common/box.py.
"""
from __future__ import annotations

import math
import numbers

import cv2
import numpy as np

from common.box import scale_points
from common.rotation import footprint

# ArcFace's template for 112x112 crops: LE RE N LM RM, left and right as seen on the crop.
TEMPLATE_SIZE = 112
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]])
# Crop sides taken by `predict --align` and the web API: smaller crops hold no face to speak
# of, larger ones only blur.
MIN_SIZE, MAX_SIZE = 8, 4096
# Shrinking by more than this, warp first averages the photo down (cv2.INTER_AREA) to where the
# rest is this shrink: bilinear sampling alone skips pixels and aliases (a face of 1000 pixels
# into 112). On the 100 sample test faces cut to 20 pixels, the mean difference to a 112 crop
# shrunk with INTER_AREA falls from 6.1 to 2.0 grey levels.
AREA_BELOW = 0.5


def check_size(size) -> int:
    """`size` as a crop side in pixels; ValueError unless a positive whole number."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
        raise ValueError(f"the aligned crop size must be a positive whole number of pixels, not {size!r}")
    return int(size)


def parse_size(text: str) -> int:
    """A crop size given as text (command line, form field); ValueError saying what is taken."""
    try:
        size = int(str(text).strip())
    except ValueError:
        raise ValueError(f"the aligned crop size must be a whole number of pixels, not {text!r}") from None
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"the aligned crop size must be {MIN_SIZE} to {MAX_SIZE} pixels, not {size}")
    return size


def template(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """The template's five points (5, 2) for a size x size crop: the 112 one, resized as
    cv2.resize maps pixel centres (so a 224 crop shrunk to 112 is the 112 crop)."""
    size = check_size(size)
    k = size / TEMPLATE_SIZE
    return scale_points(TEMPLATE_112, k, k)


def similarity(src, dst) -> np.ndarray:
    """The 2x3 matrix of the similarity (rotation, uniform scale, shift) that maps points
    `src` (N, 2) nearest to `dst` (N, 2) in the least-squares sense (Umeyama 1991). A
    reflection fitting better is refused: the best proper rotation is taken instead."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"similarity needs two (N, 2) point arrays with N >= 2, not {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("similarity: the points must be finite")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs ** 2).sum() / len(src)
    if var_s <= 1e-12 * max(1.0, float(np.abs(src).max())) ** 2:
        raise ValueError("similarity: the source points all coincide")
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    # The sign that keeps U S Vt a rotation (det +1): Umeyama's S.
    s = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) >= 0 else -1.0])
    rot = u @ np.diag(s) @ vt
    scale = float((d * s).sum() / var_s)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_matrix(points, size: int = TEMPLATE_SIZE) -> np.ndarray:
    """2x3 matrix taking photo pixels to the pixels of the size x size aligned crop of the
    face with these five points (LE RE N LM RM)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (5, 2):
        raise ValueError(f"an aligned crop needs the five points as a (5, 2) array, not {pts.shape}")
    return similarity(pts, template(size))


# Pixel types cv2.warpAffine takes; the crop keeps the photo's.
WARPABLE = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def check_image(image) -> np.ndarray:
    """`image` if cv2.warpAffine can cut a crop from it; ValueError naming the problem."""
    if image is None:
        raise ValueError("image is None: cv2.imread returns None for a file it cannot read")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"the image must be a numpy array (as cv2.imread gives), not {type(image).__name__}")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0 \
            or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"the image must be gray (H, W) or colour (H, W, 1|3|4) and not empty, "
                         f"not of shape {image.shape}")
    if image.dtype.type not in WARPABLE:
        raise ValueError(f"the image has {image.dtype} pixels: an aligned crop takes "
                         f"{', '.join(np.dtype(t).name for t in WARPABLE)}")
    return image


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size x size crop `matrix` (photo -> crop) cuts from `image`. What lies outside the
    photo is black (BORDER_CONSTANT 0), as in the crops ArcFace-style recognisers are trained
    on (insightface's norm_crop); repeating the edge pixels would smear stripes into the face
    that look like content."""
    image, size = check_image(image), check_size(size)
    m = np.asarray(matrix, dtype=np.float64)
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    if scale < AREA_BELOW:
        image, m = _area_shrunk(image, m, size, scale)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _area_shrunk(image: np.ndarray, m: np.ndarray, size: int, scale: float):
    """(the part of `image` the crop covers, averaged down to 1 / AREA_BELOW times the crop's
    resolution, the matrix from it to the crop)."""
    # two crop pixels of margin: the bilinear taps at the edge stay inside
    cut = footprint(m, size, image.shape, 2.0 / scale)
    if cut is None:  # the crop lies wholly outside the photo
        return image, m
    x0, y0, x1, y1 = cut
    region = image[y0:y1, x0:x1]
    scale = scale / AREA_BELOW
    rw, rh = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    small = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
    kx, ky = rw / (x1 - x0), rh / (y1 - y0)
    # small pixel (u, v) = ((x - x0 + 0.5) kx - 0.5, (y - y0 + 0.5) ky - 0.5): invert, then m.
    to_photo = np.array([[1 / kx, 0, x0 + 0.5 / kx - 0.5], [0, 1 / ky, y0 + 0.5 / ky - 0.5]])
    return small, _compose(m, to_photo)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of `a` after `b`."""
    out = np.empty((2, 3))
    out[:, :2] = a[:, :2] @ b[:, :2]
    out[:, 2] = a[:, :2] @ b[:, 2] + a[:, 2]
    return out


def aligned_crop(image: np.ndarray, points, size: int = TEMPLATE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(crop, 2x3 matrix photo -> crop) of the face with these five points."""
    check_image(image)
    m = align_matrix(points, check_size(size))
    return warp(image, m, size), m
