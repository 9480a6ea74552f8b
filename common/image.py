"""Image arrays: channel conversions and shrinking, shared by the detectors and the cascade;
and the photo wear the confidence fit and the training data can add (`degraded`)."""
from __future__ import annotations

import threading
from contextlib import contextmanager

import cv2
import numpy as np


# Channels of the arrays taken: gray, BGR, BGRA (what cv2.imread gives).
CHANNELS = (1, 3, 4)


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit, wider integer or float pixels stretched to 8 bits between their own minimum and
    maximum (NaN as 0). Such images have no fixed white (a 12-bit camera in 16 bits, floats in
    0-1 or 0-255), and the detectors and the cascade see contrast, so stretching loses nothing
    they use. The web app's uploads and Landmarker's arrays both go through here."""
    arr = pixels.astype(np.float32)  # one copy of its own, worked on in place (large uploads)
    np.nan_to_num(arr, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    arr -= lo
    arr *= 255.0 / (hi - lo) if hi > lo else 0.0
    # Rounded, not truncated: an 8-bit image widened to 16 bits (x 257) comes back unchanged.
    return np.rint(arr, out=arr).astype(np.uint8)


def checked_photo(image) -> np.ndarray:
    """`image` as the detectors and the cascade take it: 8-bit gray, BGR or BGRA, as cv2.imread
    gives; other integer and float depths go through to_8bit. ValueError naming the problem for
    anything else. An 8-bit C-contiguous array comes back as it is (no copy)."""
    if image is None:
        raise ValueError("image is None: cv2.imread returns None for a file it cannot read")
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, as cv2.imread gives, not {type(image).__name__}")
    shape = image.shape
    if not (image.ndim == 2 or (image.ndim == 3 and shape[2] in CHANNELS)):
        raise ValueError(f"image has shape {shape}: expected (height, width) gray, or (height, width, "
                         "channels) with 1 (gray), 3 (BGR) or 4 (BGRA) channels")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"image is empty: shape {shape}")
    if image.dtype != np.uint8:
        if image.dtype.kind not in "uif":
            raise ValueError(f"image has {image.dtype} pixels: expected 8-bit (uint8), or 16-bit, "
                             "wider integer or float pixels (stretched to 8 bits)")
        image = to_8bit(image)
    return image if image.flags.c_contiguous else np.ascontiguousarray(image)


def to_gray(image: np.ndarray) -> np.ndarray:
    """8-bit gray from gray, BGR or BGRA."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"not an image array: shape {image.shape}")


def patch_spread(gray: np.ndarray, centres: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Standard deviation of the grey levels in the square patch of half-size `half` (N,) px
    about each centre (N, 2), clipped to the image (0 for a patch wholly outside)."""
    h, w = gray.shape[:2]
    out = np.zeros(len(centres))
    for i, ((x, y), r) in enumerate(zip(centres, half)):
        x0, y0 = max(0, int(round(x - r))), max(0, int(round(y - r)))
        x1, y1 = min(w, int(round(x + r)) + 1), min(h, int(round(y + r)) + 1)
        if x1 > x0 and y1 > y0:
            out[i] = float(gray[y0:y1, x0:x1].std())
    return out


def to_rgb(image: np.ndarray) -> np.ndarray:
    """8-bit RGB from gray, BGR or BGRA."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"not an image array: shape {image.shape}")


def shrink_to(image: np.ndarray, max_side: int | None, quick: bool = False) -> tuple[np.ndarray, float, float]:
    """(copy at most `max_side` pixels on its longer side, kx, ky): original pixels per pixel
    of the copy, across and down. No copy when it already fits. `quick`: from the photo's
    `halvings` (shared within a photo_scope), and the last step, less than a halving, bilinear
    rather than area averaging: OpenCV's area averaging by a fraction costs about 7x its
    halving (1000x750 -> 683x512: 7.5 ms against 1.1), and a detector does not see the
    difference (benchmarks/detection.py)."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0, 1.0
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if quick:
        level, lkx, lky = halvings(image, s)
        small = level if level.shape[1::-1] == size else cv2.resize(level, size, interpolation=cv2.INTER_LINEAR)
        return small, lkx * level.shape[1] / size[0], lky * level.shape[0] / size[1]
    small = image
    # Halving by area averaging is fast; a fractional shrink of a large photo is not.
    while max(small.shape[:2]) >= 2 * max_side:
        small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
    small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    return small, w / small.shape[1], h / small.shape[0]


QUARTER_FROM = 4_000_000
_scope = threading.local()


@contextmanager
def photo_scope(image: np.ndarray):
    """Within it, what `halvings` and `scope_cache` make for `image` is kept (one Landmarker
    call: its search, the cascade's chips and the detector's second looks share it) and then
    dropped, so a caller that draws on its array or reads the next frame into it never meets
    pixels made from the old ones. Nested scopes of the same photo are one scope."""
    if getattr(_scope, "image", None) is image:
        yield
        return
    saved = getattr(_scope, "image", None), getattr(_scope, "store", None)
    _scope.image, _scope.store = image, {}
    try:
        yield
    finally:
        _scope.image, _scope.store = saved


def scope_cache(image: np.ndarray) -> dict:
    """The dict kept for `image` in the current photo_scope; outside one, a fresh dict that
    nothing keeps."""
    return _scope.store if getattr(_scope, "image", None) is image else {}


def halvings(image: np.ndarray, at_least: float) -> tuple[np.ndarray, float, float]:
    """(`image` halved as often as leaves it at least `at_least` times its size, kx, ky: image
    pixels per pixel of it). Each halving averages 2x2 pixels (OpenCV's fast exact path; an odd
    last row or column is left out, so pixel centres map as x = (u + 0.5) kx - 0.5). Within a
    photo_scope they are made once: a 12-megapixel photo is read in full once. Where two
    halvings in a row are wanted from a level of more than QUARTER_FROM pixels, one bilinear
    step makes the quarter: it averages the middle 2x2 of each 4x4 block, reading half the rows
    (4000x3000: 0.52x the time of two halvings, in one run), and what follows averages further."""
    levels = scope_cache(image).setdefault("halvings", [(image, 1.0, 1.0)])
    k = 0
    while True:
        if k + 1 == len(levels):
            level, kx, ky = levels[k]
            h, w = level.shape[:2]
            if h < 2 or w < 2 or 1.0 / (2 * max(kx, ky)) < at_least:
                return levels[k]
            if h * w > QUARTER_FROM and 1.0 / (4 * max(kx, ky)) >= at_least:
                cut = level[:h - h % 4, :w - w % 4]
                levels.append((cv2.resize(cut, (w // 4, h // 4), interpolation=cv2.INTER_LINEAR), 4 * kx, 4 * ky))
            else:
                even = level[:h - h % 2, :w - w % 2]
                levels.append((cv2.resize(even, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 2 * kx, 2 * ky))
        if 1.0 / max(levels[k + 1][1], levels[k + 1][2]) < at_least:
            return levels[k]
        k += 1


def halving_to_photo(kx: float, ky: float) -> np.ndarray:
    """3x3 matrix from the pixels of a copy shrunk kx, ky times (a level of `halvings`, or
    `shrink_to`'s copy) to the photo's: pixel centres at integers, as cv2.resize maps them."""
    return np.array([[kx, 0.0, 0.5 * kx - 0.5], [0.0, ky, 0.5 * ky - 0.5], [0.0, 0.0, 1.0]])


def degraded(gray: np.ndarray, face_width: float, rng: np.random.Generator) -> np.ndarray:
    """A gray photo made harder for a face `face_width` pixels wide, one of: shrunk so the face
    is 24-48 px wide and blown up again (small faces), blurred, JPEG-compressed, noisy, or
    darkened. common.confidence fits on such copies (the nets saw every training face, so on the
    training images they are right more often than on new faces at the same disagreement);
    dataset/ can train on them (`--wear`)."""
    how = rng.integers(5)
    h, w = gray.shape[:2]
    if how == 0:
        f = min(1.0, rng.uniform(24, 48) / face_width)
        small = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if how == 1:
        return cv2.GaussianBlur(gray, (0, 0), rng.uniform(0.02, 0.04) * face_width)
    if how == 2:
        _, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(10, 30))])
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    if how == 3:
        return np.clip(gray + rng.normal(0, rng.uniform(8, 20), gray.shape), 0, 255).astype(np.uint8)
    return np.clip(gray.astype(np.float32) * rng.uniform(0.15, 0.35), 0, 255).astype(np.uint8)
