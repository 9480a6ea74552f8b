"""The one box type: every crop, projection (pixels -> box-relative) and back-projection.

Conventions
- A box is (left, right, top, bottom) in image pixels, as in the CUHK list files.
- Pixel centres are at integer coordinates (pixel i spans [i - 0.5, i + 0.5]).
- Box-relative coordinates: (x - left) / width, (y - top) / height; 0..1 across the box.
- A crop of size (w, h) puts output pixel j's centre at relative (j + 0.5) / w, so a feature at
  relative r appears at output pixel r * w - 0.5. Projection and cropping agree exactly.
- Crops that leave the image are padded by repeating the border pixels; the box is never
  shifted or clipped to fit.
- Rotations are by `angle` degrees counter-clockwise about the box centre
  (common.rotation.rotation_about), applied to the image before cropping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from concurrent.futures import Executor
from typing import Sequence

import cv2
import numpy as np

from common import cropkernel
from common.cropkernel import SourceImages
from common.rotation import rotation_about, transform


# Boxes.crops hands a thread this many boxes at a time: enough to outweigh the hand-over.
CROPS_PER_TASK = 64


def scale_points(points, fx: float, fy: float) -> np.ndarray:
    """Points (N, 2) in an image resized fx times wider and fy times higher (pixel centres at
    integers, as cv2.resize maps them)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.column_stack(((pts[:, 0] + 0.5) * fx - 0.5, (pts[:, 1] + 0.5) * fy - 0.5))


@dataclass(frozen=True)
class Box:
    left: float
    right: float
    top: float
    bottom: float

    def __post_init__(self):
        if not (self.right > self.left and self.bottom > self.top):
            raise ValueError(f"empty box: left={self.left} right={self.right} top={self.top} bottom={self.bottom}")

    # --- construction -------------------------------------------------------------------
    @classmethod
    def around(cls, x: float, y: float, half_w: float, half_h: float) -> "Box":
        return cls(x - half_w, x + half_w, y - half_h, y + half_h)

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float, kx: float = 1.0, ky: float = 1.0) -> "Box":
        """An OpenCV rectangle (x, y, width, height), found in a copy of the image shrunk kx
        times across and ky times down. Its x and y are its left and top edges (pixel centres
        at integers), so the edges scale back as plain multiples."""
        return cls(x * kx, (x + w) * kx, y * ky, (y + h) * ky)

    # --- measures -----------------------------------------------------------------------
    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2.0, (self.top + self.bottom) / 2.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.left, self.right, self.top, self.bottom)

    def overlap(self, other: "Box") -> float:
        """The area this box shares with `other` (0 when they do not meet)."""
        iw = min(self.right, other.right) - max(self.left, other.left)
        ih = min(self.bottom, other.bottom) - max(self.top, other.top)
        return iw * ih if iw > 0 and ih > 0 else 0.0

    def iou(self, other: "Box") -> float:
        inter = self.overlap(other)
        if inter == 0.0:
            return 0.0
        return inter / (self.width * self.height + other.width * other.height - inter)

    # --- derived boxes ------------------------------------------------------------------
    def sub(self, region: tuple[float, float, float, float]) -> "Box":
        """The region (left, right, top, bottom) given relative to this box."""
        l, r, t, b = region
        return Box(self.left + l * self.width, self.left + r * self.width,
                   self.top + t * self.height, self.top + b * self.height)

    def patch(self, x: float, y: float, half_size: float) -> "Box":
        """Patch centred on (x, y), half-size a fraction of this box's width and height."""
        return Box.around(x, y, half_size * self.width, half_size * self.height)

    def moved(self, dx: float = 0.0, dy: float = 0.0, scale: float = 1.0,
              scale_y: float | None = None) -> "Box":
        """Shifted by (dx, dy) box widths/heights and scaled by `scale` about its centre
        (its height by `scale_y` when given)."""
        cx, cy = self.center
        cx += dx * self.width
        cy += dy * self.height
        scale_y = scale if scale_y is None else scale_y
        return Box.around(cx, cy, scale * self.width / 2.0, scale_y * self.height / 2.0)

    def scaled(self, fx: float, fy: float) -> "Box":
        """This box in the image resized fx times wider and fy times higher."""
        (l, t), (r, b) = scale_points([(self.left, self.top), (self.right, self.bottom)], fx, fy)
        return Box(l, r, t, b)

    def mirrored(self, image_width: int) -> "Box":
        """This box in the image flipped left-right (cv2.flip(img, 1))."""
        return Box(image_width - 1 - self.right, image_width - 1 - self.left, self.top, self.bottom)

    # --- geometry -----------------------------------------------------------------------
    def rotation(self, angle: float) -> np.ndarray:
        """3x3 matrix rotating image coordinates about the box centre."""
        m = np.eye(3)
        if angle:
            m[:2] = rotation_about(self.center, angle)
        return m

    def to_relative(self, points: np.ndarray, angle: float = 0.0, rotation: np.ndarray | None = None) -> np.ndarray:
        """Image pixels (N, 2) -> box-relative (N, 2), after rotating the image by `angle`
        (`rotation`: self.rotation(angle), when the caller has it already)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if angle:
            pts = transform(pts, (self.rotation(angle) if rotation is None else rotation)[:2])
        return np.column_stack(((pts[:, 0] - self.left) / self.width,
                                (pts[:, 1] - self.top) / self.height))

    def to_absolute(self, relative: np.ndarray) -> np.ndarray:
        """Box-relative (N, 2) -> image pixels (N, 2) (no rotation: inference)."""
        rel = np.asarray(relative, dtype=np.float64).reshape(-1, 2)
        return np.column_stack((self.left + rel[:, 0] * self.width,
                                self.top + rel[:, 1] * self.height))

    def affine(self, out_w: int, out_h: int, angle: float = 0.0, rotation: np.ndarray | None = None) -> np.ndarray:
        """2x3 matrix from image pixels to output pixels of a (out_w, out_h) crop."""
        sx, sy = out_w / self.width, out_h / self.height
        to_crop = np.array([[sx, 0.0, -self.left * sx - 0.5],
                            [0.0, sy, -self.top * sy - 0.5],
                            [0.0, 0.0, 1.0]])
        return (to_crop @ (self.rotation(angle) if rotation is None else rotation))[:2]

    def crop(self, image: np.ndarray, out_w: int, out_h: int, angle: float = 0.0,
             rotation: np.ndarray | None = None) -> np.ndarray:
        """The box's content resampled to out_h rows x out_w columns.

        Large boxes are first cut at about their own resolution, then shrunk with area
        averaging (no aliasing); both steps keep the pixel-centre convention, so the result
        matches `to_relative` exactly.
        """
        mid_w = max(out_w, int(math.ceil(self.width)))
        mid_h = max(out_h, int(math.ceil(self.height)))
        m = self.affine(mid_w, mid_h, angle, rotation)
        # dsize is (width, height), not image.shape.
        mid = cv2.warpAffine(image, m, (mid_w, mid_h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        if (mid_w, mid_h) == (out_w, out_h):
            return mid
        return cv2.resize(mid, (out_w, out_h), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Boxes:
    """Boxes as float64 arrays of one shape (N,) or (K, N): the vector form of Box, for whole
    batches.

    Every method does Box's arithmetic in Box's order, so a batch gives bit for bit the numbers
    that Box gives one box at a time (tests/test_geometry.py checks it).
    """
    left: np.ndarray
    right: np.ndarray
    top: np.ndarray
    bottom: np.ndarray

    @classmethod
    def of(cls, boxes: Sequence[Box]) -> "Boxes":
        a = np.array([b.as_tuple() for b in boxes], dtype=np.float64).reshape(-1, 4)
        return cls(a[:, 0], a[:, 1], a[:, 2], a[:, 3])

    def __len__(self) -> int:
        return len(self.left)

    def __getitem__(self, i) -> "Boxes":
        return Boxes(self.left[i], self.right[i], self.top[i], self.bottom[i])

    def box(self, i: int) -> Box:
        return Box(float(self.left[i]), float(self.right[i]), float(self.top[i]), float(self.bottom[i]))

    def ravel(self) -> "Boxes":
        return Boxes(self.left.ravel(), self.right.ravel(), self.top.ravel(), self.bottom.ravel())

    @property
    def width(self) -> np.ndarray:
        return self.right - self.left

    @property
    def height(self) -> np.ndarray:
        return self.bottom - self.top

    def sub(self, regions: np.ndarray) -> "Boxes":
        """Box.sub of each of the N boxes for each of K regions (K, 4): boxes (K, N)."""
        l, r, t, b = (np.asarray(regions, dtype=np.float64).reshape(-1, 4).T[:, :, None])
        w, h = self.width, self.height
        return Boxes(self.left + l * w, self.left + r * w, self.top + t * h, self.top + b * h)

    def patches(self, centers: np.ndarray, half_sizes: np.ndarray) -> "Boxes":
        """Box.patch of each of the N boxes, K times: centred on centers (K, N, 2), half-sizes (K,)."""
        x, y = centers[..., 0], centers[..., 1]
        half = np.asarray(half_sizes, dtype=np.float64).reshape(-1, 1)
        half_w, half_h = half * self.width, half * self.height
        return Boxes(x - half_w, x + half_w, y - half_h, y + half_h)

    def to_absolute(self, relative: np.ndarray) -> np.ndarray:
        """Box-relative (..., k, 2) -> image pixels, each row through its own box (boxes shaped
        as relative's leading axes)."""
        rel = np.asarray(relative, dtype=np.float64)
        return np.stack((self.left[..., None] + rel[..., 0] * self.width[..., None],
                         self.top[..., None] + rel[..., 1] * self.height[..., None]), axis=-1)

    def rotations(self, angles: np.ndarray) -> np.ndarray:
        """Box.rotation of box i by angles[i] degrees: (N, 3, 3), the same matrices."""
        out = np.tile(np.eye(3), (len(self), 1, 1))
        for i in np.flatnonzero(angles).tolist():
            out[i] = self.box(i).rotation(float(angles[i]))
        return out

    def to_relative(self, points: np.ndarray, angles: np.ndarray | None = None,
                    rotations: np.ndarray | None = None) -> np.ndarray:
        """Box.to_relative of points (N, k, 2) through box i, after rotating the image by
        angles[i] (`rotations`: self.rotations(angles), when the caller has them already)."""
        pts = np.array(points, dtype=np.float64).reshape(len(self), -1, 2)
        if angles is not None and np.any(angles):
            turned = np.flatnonzero(angles)
            rot = (self.rotations(angles) if rotations is None else rotations)[turned]
            pts[turned] = pts[turned] @ np.transpose(rot[:, :2, :2], (0, 2, 1)) + rot[:, None, :2, 2]
        return np.stack(((pts[..., 0] - self.left[:, None]) / self.width[:, None],
                         (pts[..., 1] - self.top[:, None]) / self.height[:, None]), axis=-1)

    def crops(self, images: "Sequence[np.ndarray] | SourceImages", out_w: int, out_h: int,
              pool: Executor | None = None, rotations: np.ndarray | None = None) -> np.ndarray:
        """Box.crop of box i from images[i], for every box of a 1-D batch: (N, out_h, out_w),
        the images' dtype. `images`: a list, or its SourceImages (made once for several calls).
        `pool`: threads to share the boxes among (the C loop and OpenCV release Python's lock).
        `rotations`: (N, 3, 3) from `rotations`, the image turned about each box first.

        The same two steps as Box.crop with the same matrices, so the same pixels: each box is
        cut at its own resolution, then shrunk by area averaging. 8-bit gray images go through
        common/cropkernel.c (OpenCV's arithmetic, one call for many crops); others, or without
        its build, through OpenCV: the cuts of one size are stacked and shrunk in one INTER_AREA
        resize (a stack of k equal cuts shrunk to k outputs gives each cut's own shrink: the
        area cells never straddle two cuts).
        """
        sources = images if isinstance(images, SourceImages) else SourceImages(images)
        w, h = self.width, self.height
        mid_w = np.maximum(out_w, np.ceil(w)).astype(int)
        mid_h = np.maximum(out_h, np.ceil(h)).astype(int)
        sx, sy = mid_w / w, mid_h / h
        mats = np.zeros((len(self), 3, 3))
        mats[:, 0, 0], mats[:, 0, 2] = sx, -self.left * sx - 0.5
        mats[:, 1, 1], mats[:, 1, 2] = sy, -self.top * sy - 0.5
        # Box.affine's product, matrix by matrix (numpy's stacked product is the same per pair)
        mats = (mats @ rotations)[:, :2] if rotations is not None else mats[:, :2]
        out = np.empty((len(self), out_h, out_w), dtype=sources.dtype)
        if sources.native and cropkernel.fits(mid_w, mid_h) and cropkernel.load() is not None:
            step = min(max(CROPS_PER_TASK, -(-len(self) // 8)), cropkernel.MAX_CROPS)
            runs = [(a, min(a + step, len(self))) for a in range(0, len(self), step)]
            if pool is None or len(runs) < 2:
                for a, b in runs:
                    cropkernel.cut(sources, a, b, mats, mid_w, mid_h, out)
            else:
                for done in [pool.submit(cropkernel.cut, sources, a, b, mats, mid_w, mid_h, out) for a, b in runs]:
                    done.result()
            return out

        def cut(mw: int, mh: int, which: list[int]) -> None:
            if (mw, mh) == (out_w, out_h):  # no bigger than the output: the cut is the crop
                for i in which:
                    cv2.warpAffine(sources[i], mats[i], (mw, mh), dst=out[i], flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
                return
            stack = np.empty((len(which) * mh, mw), sources.dtype)
            for j, i in enumerate(which):
                cv2.warpAffine(sources[i], mats[i], (mw, mh), dst=stack[j * mh:(j + 1) * mh],
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            small = cv2.resize(stack, (out_w, len(which) * out_h), interpolation=cv2.INTER_AREA)
            out[which] = small.reshape(len(which), out_h, out_w)

        sizes: dict[tuple[int, int], list[int]] = {}
        for i, size in enumerate(zip(mid_w.tolist(), mid_h.tolist())):
            sizes.setdefault(size, []).append(i)
        tasks = [(mw, mh, which[k:k + CROPS_PER_TASK]) for (mw, mh), which in sizes.items()
                 for k in range(0, len(which), CROPS_PER_TASK)]
        if pool is None or len(self) < 2 * CROPS_PER_TASK:
            for task in tasks:
                cut(*task)
        else:
            for done in [pool.submit(cut, *task) for task in tasks]:
                done.result()
        return out
