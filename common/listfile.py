"""CUHK 5-point list files: `path left right top bottom x1 y1 ... x5 y5`, one face a line.

Accepts `/` or `\\` in paths and LF or CRLF line ends. Image paths are relative to the
folder that holds the list file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.box import Box
from common.nets import MIRROR_ORDER

N_FIELDS = 15


class ListFileError(ValueError):
    """A list file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class FaceSample:
    image_path: Path
    box: Box
    points: np.ndarray  # (5, 2) float64, order LE RE N LM RM

    def load_gray(self) -> np.ndarray:
        return self._load(cv2.IMREAD_GRAYSCALE)

    def load_color(self) -> np.ndarray:
        """BGR, as cv2.imread gives (the face detectors want colour)."""
        return self._load(cv2.IMREAD_COLOR)

    def _load(self, flags: int) -> np.ndarray:
        img = cv2.imread(str(self.image_path), flags)
        if img is None:
            raise FileNotFoundError(f"cannot read image {self.image_path}")
        return img

    def mirrored(self, image_width: int) -> "FaceSample":
        """The same face in the image flipped left-right (mirror_points, Box.mirrored)."""
        return FaceSample(self.image_path, self.box.mirrored(image_width), mirror_points(self.points, image_width))


def mirror_points(points: np.ndarray, image_width: int) -> np.ndarray:
    """Five points (5, 2) of a face, in the image flipped left-right (cv2.flip(img, 1)):
    x -> W-1-x, and the left and right points swapped (MIRROR_ORDER), so that LE is still the
    eye on the left."""
    pts = np.array(points, copy=True)
    pts[:, 0] = image_width - 1 - pts[:, 0]
    return pts[list(MIRROR_ORDER)]


def parse_line(line: str, base: Path, where: str) -> FaceSample:
    fields = line.split()
    if len(fields) != N_FIELDS:
        raise ListFileError(f"{where}: expected {N_FIELDS} fields "
                            f"(path left right top bottom x1 y1 ... x5 y5), found {len(fields)}")
    try:
        nums = [float(v) for v in fields[1:]]
    except ValueError as exc:
        raise ListFileError(f"{where}: not a number: {exc}") from None
    if not all(np.isfinite(nums)):
        raise ListFileError(f"{where}: non-finite number")
    left, right, top, bottom = nums[:4]
    if right <= left or bottom <= top:
        raise ListFileError(f"{where}: empty box (left={left:g} right={right:g} top={top:g} bottom={bottom:g}); "
                            "the order is left right top bottom")
    rel = fields[0].replace("\\", "/")
    return FaceSample(base / rel, Box(left, right, top, bottom),
                      np.array(nums[4:], dtype=np.float64).reshape(5, 2))


def read_list(list_path: str | os.PathLike, limit: int | None = None) -> list[FaceSample]:
    """All faces of a list file (the first `limit` with limit set)."""
    list_path = Path(list_path)
    if not list_path.is_file():
        raise FileNotFoundError(f"list file not found: {list_path}")
    base = list_path.parent
    samples = []
    with open(list_path, "r", encoding="utf-8", newline=None) as fh:  # newline=None: CRLF -> LF
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            samples.append(parse_line(line, base, f"{list_path}:{lineno}"))
            if limit is not None and len(samples) >= limit:
                break
    if not samples:
        raise ListFileError(f"{list_path}: no faces listed")
    return samples


def format_line(sample: FaceSample, base: Path) -> str:
    """The list-file line for a sample, its path relative to `base`."""
    rel = os.path.relpath(sample.image_path, base).replace(os.sep, "/")
    b = sample.box
    nums = [b.left, b.right, b.top, b.bottom]
    return " ".join([rel] + [f"{v:g}" for v in nums] + [f"{v:.6f}" for v in sample.points.ravel()])
