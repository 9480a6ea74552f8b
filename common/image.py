"""Image arrays: channel conversions and shrinking, shared by the detectors and the cascade."""
from __future__ import annotations

import cv2
import numpy as np


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


def to_rgb(image: np.ndarray) -> np.ndarray:
    """8-bit RGB from gray, BGR or BGRA."""
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ValueError(f"not an image array: shape {image.shape}")


def shrink_to(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float, float]:
    """(copy at most `max_side` pixels on its longer side, kx, ky): original pixels per pixel
    of the copy, across and down. No copy when it already fits."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0, 1.0
    small = image
    # Halving by area averaging is fast; a fractional shrink of a large photo is not.
    while max(small.shape[:2]) >= 2 * max_side:
        small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2), interpolation=cv2.INTER_AREA)
    s = max_side / max(h, w)
    small = cv2.resize(small, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return small, w / small.shape[1], h / small.shape[0]
