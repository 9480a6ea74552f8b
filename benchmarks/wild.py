"""Faces in the wild, synthesised from the CUHK test split: found rate and point error of the
whole photo -> points path (common.landmarker.Landmarker: detector, rotation search, box rule,
cascade) by roll, face size, canvas size and degradation.

    .venv/bin/python benchmarks/wild.py [--faces 600] [--detector mtcnn] [--angles 0 45 -45 90 -90]
        [--model DIR] [--data DIR] [--seed 0] [--json FILE] [--examples DIR] [--save-set DIR]
        [--min-confidence P] [--split train] [--referee [PYTHON]] [--screen]

Only test-split faces are used (never the training list) unless `--split train` asks for the
training split's (to fit on: with --min-confidence 0 it prints the tables the verifier's
threshold, common.landmarker.MIN_CONFIDENCE, and sure-face rule, SURE_SHARE, were chosen from).
Each synthetic photo holds one of them, chosen evenly over the list: its square region (2.2 box
widths) rotated by a roll of 0/15/30/45/60/90 degrees (equal counts, random sign; positive =
counter-clockwise as shown), scaled to a box width drawn log-uniformly from 24 to 400 px (at
most 280 on 640x480), pasted through a feathered round mask onto a 640x480 or 1920x1080 canvas
tiled with pieces of other test images that hold no listed face (nor, with --screen, any face
YuNet finds: benchmarks/screen.py); then each of blur, darkening and JPEG re-encoding with
probability 0.2. A face is found when a returned face's region holds
the true eyes and nose; its error is the distance to the truth over the true box width (%), as
elsewhere in the project; the JSON keeps its confidence and those of the false faces
(common.confidence --report --wild).
The set is built one photo at a time (deterministic for a --seed); about 1 s a photo with
MTCNN and five angles on 2 shared cores, so the default 600 faces take about 10 minutes.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from benchmarks.peers import PeerUnavailable, add_referee_argument, open_referee, sees_face
from benchmarks.screen import covers, open_screen
from common.box import Box
from common.detectors import DEFAULT_DETECTOR, detector_names
from common.listfile import FaceSample, format_line, read_list
from common.netfiles import MODEL_HELP
from common.nets import POINTS
from common.orientation import DEFAULT_ANGLES
from common.rotation import eye_roll, rotation_about, transform
from common.paths import DATA_ENV, DataMissing, data_lists, rel

ROLL_BUCKETS = (0, 15, 30, 45, 60, 90)
SIZE_BUCKETS = ((24, 32), (32, 40), (40, 64), (64, 128), (128, 256), (256, 400))
CANVASES = ((640, 480), (1920, 1080))
MIN_SIZE, MAX_SIZE, MAX_SIZE_SMALL = 24.0, 400.0, 280.0
REGION = 2.2             # side of the pasted square region, in box widths
DEGRADE_P = 0.2          # probability of each degradation
DEGRADATIONS = ("blur", "dark", "jpeg")
FAR_FACE = 40.0          # target (a) holds for faces at least this wide
TARGET_FOUND = 99.0      # % found, every roll bucket up to TARGET_MAX_ROLL
TARGET_MAX_ROLL = 90      # issue 25: every roll from 0 to 90 degrees (the first detector issue: 60)
TARGET_RATIO = 1.3       # error at 45 degrees / error at 0
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cuhk_facepoint"


def read_split(data: str | None, prog: str, split: str = "test") -> tuple[Path, list[FaceSample]]:
    """(the list, its faces) of the data set's `split` ("test" or "train"; --data, else
    $DEEP_LANDMARK_DATA, else the shared copy); exits with status 2 and one line naming the
    problem when they cannot be read."""
    try:
        train_list, test_list = data_lists(data or os.environ.get(DATA_ENV) or DEFAULT_DATA)
        chosen = test_list if split == "test" else train_list
        return chosen, read_list(chosen)
    except (DataMissing, FileNotFoundError, ValueError) as exc:
        print(f"{prog}: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(2) from None


# --- building one photo -------------------------------------------------------------------
@dataclass
class Photo:
    index: int
    source: FaceSample
    roll: float              # degrees, counter-clockwise as shown
    size: float              # true box width in the photo (the error normaliser)
    canvas: tuple[int, int]  # (width, height)
    image: np.ndarray
    points: np.ndarray       # (5, 2) true points in the photo
    center: tuple[float, float]
    box_height: float
    degradations: dict = field(default_factory=dict)

    @property
    def bucket(self) -> int:
        return int(round(abs(self.roll)))

    @property
    def upright_box(self) -> Box:
        """The true box in the face's own upright frame, about its centre in the photo."""
        return Box.around(self.center[0], self.center[1], self.size / 2, self.box_height / 2)


class Backgrounds:
    """Pieces of test images away from their listed face: strips left, right and below the
    box widened by a margin, so that the listed face does not land in a background. Other people
    in the images may (the false faces in these benchmarks count them: --referee tells them
    apart) unless `others` (benchmarks.screen.OtherFaces) is given: then no piece covers a face
    it finds."""
    MARGIN = 0.3   # box widths/heights kept clear around the listed box
    MIN_SIDE = 24

    def __init__(self, samples: list[FaceSample], others=None):
        self.samples = samples
        self.others = others

    def strips(self, k: int) -> tuple[np.ndarray | None, list[tuple[int, int, int, int]]]:
        s = self.samples[k]
        img = cv2.imread(str(s.image_path), cv2.IMREAD_COLOR)
        if img is None:
            return None, []
        h, w = img.shape[:2]
        b = s.box
        mx, my = self.MARGIN * b.width, self.MARGIN * b.height
        cands = [(0, int(b.left - mx), 0, h),             # x0 x1 y0 y1
                 (int(math.ceil(b.right + mx)), w, 0, h),
                 (0, w, int(math.ceil(b.bottom + my)), h)]
        out = [(max(0, x0), min(w, x1), max(0, y0), min(h, y1)) for x0, x1, y0, y1 in cands]
        return img, [r for r in out if r[1] - r[0] >= self.MIN_SIDE and r[3] - r[2] >= self.MIN_SIDE]

    def piece(self, rng: np.random.Generator, exclude: Path, tw: int, th: int, log: list | None = None) -> np.ndarray:
        """A (th, tw, 3) piece: a window of a random strip with the tile's aspect, resized.
        `log` gets (sample index, (left, top, right, bottom) of the window in its image)."""
        for _ in range(50):
            k = int(rng.integers(len(self.samples)))
            if self.samples[k].image_path == exclude:
                continue
            img, rects = self.strips(k)
            if not rects:
                continue
            x0, x1, y0, y1 = rects[int(rng.integers(len(rects)))]
            sw, sh = x1 - x0, y1 - y0
            aspect = tw / th
            ww, wh = (sw, sw / aspect) if sw / sh < aspect else (sh * aspect, sh)
            frac = rng.uniform(0.6, 1.0)   # not always the whole strip
            ww, wh = max(8, int(ww * frac)), max(8, int(wh * frac))
            ox = x0 + int(rng.integers(0, sw - ww + 1))
            oy = y0 + int(rng.integers(0, sh - wh + 1))
            if self.others is not None and any(covers(Box(ox, ox + ww, oy, oy + wh), b)
                                               for b in self.others.boxes(self.samples[k], img)):
                continue
            window = img[oy:oy + wh, ox:ox + ww]
            if log is not None:
                log.append((k, (ox, oy, ox + window.shape[1], oy + window.shape[0])))
            if rng.random() < 0.5:
                window = window[:, ::-1]
            return cv2.resize(window, (tw, th), interpolation=cv2.INTER_LINEAR)
        return np.full((th, tw, 3), 128, np.uint8)

    def canvas(self, rng: np.random.Generator, exclude: Path, width: int, height: int,
               log: list | None = None) -> np.ndarray:
        """The canvas tiled in rows of pieces of random heights and widths (`log`: see piece)."""
        out = np.empty((height, width, 3), np.uint8)
        y = 0
        while y < height:
            th = int(rng.uniform(0.22, 0.45) * height)
            th = height - y if height - y < th * 1.4 else th
            x = 0
            while x < width:
                tw = int(th * rng.uniform(0.6, 1.6))
                tw = width - x if width - x < tw * 1.4 else tw
                out[y:y + th, x:x + tw] = self.piece(rng, exclude, tw, th, log)
                x += tw
            y += th
        return cv2.GaussianBlur(out, (0, 0), 0.8)


def round_mask(side: int) -> np.ndarray:
    """(side, side) float32 weights: 1 inside 80% of the radius, fading to 0 at the edge."""
    r = (side - 1) / 2.0
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    d = np.sqrt((xx - r) ** 2 + (yy - r) ** 2) / max(r, 1.0)
    return np.clip((1.0 - d) / 0.2, 0.0, 1.0)


def place(rng: np.random.Generator, canvas: tuple[int, int], side: int, size: float, roll: float) -> tuple[float, float]:
    """A random centre for the pasted square: the square inside the canvas where it fits, else
    (a large face on the small canvas) at least the rotated face box with a little room."""
    w, h = canvas
    extent = 0.5 * size * (abs(math.cos(math.radians(roll))) + abs(math.sin(math.radians(roll)))) * 1.1
    centre = []
    for length in (w, h):
        half = (side - 1) / 2.0 if side <= length else min(extent, (length - 1) / 2.0)
        centre.append(float(rng.uniform(half, length - 1 - half)))
    return centre[0], centre[1]


def patch_side(size: float, region: float = REGION) -> int:
    """Side of the square pasted for a face `size` pixels wide (odd, so it has a centre pixel)."""
    return int(math.ceil(region * size)) | 1


def paste_face(image: np.ndarray, sample: FaceSample, roll: float, size: float, centre: tuple[float, float],
               face_img: np.ndarray | None = None, region: float = REGION,
               light=None) -> tuple[np.ndarray, tuple[float, float], float]:
    """Paste `sample`'s face into `image` (in place): its square region (`region` box widths)
    rotated by `roll` (counter-clockwise as shown) and scaled to a box width of `size`, through
    a feathered round mask centred at `centre` and clipped to the image; `light` (uint8 patch ->
    uint8 patch) changes the face's lighting first. Returns (true points (5, 2), the box centre,
    the box height), in image pixels."""
    if face_img is None:
        face_img = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
        if face_img is None:
            raise FileNotFoundError(f"cannot read image {sample.image_path}")
    height, width = image.shape[:2]
    scale = size / sample.box.width
    side = patch_side(size, region)
    half = (side - 1) / 2.0
    cx, cy = sample.box.center
    # Source image -> patch: rotate by `roll` and scale about the box centre, centre at `half`.
    m = rotation_about((cx, cy), roll, scale, to=(half, half))
    patch = cv2.warpAffine(face_img, m, (side, side), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    if light is not None:
        patch = light(patch)
    px, py = centre
    ox, oy = int(round(px - half)), int(round(py - half))   # canvas pixel of patch pixel (0, 0)
    # The paste, clipped to the canvas.
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + side, width), min(oy + side, height)
    if x1 > x0 and y1 > y0:  # a face wholly outside (a video's face leaving) pastes nothing
        alpha = round_mask(side)[y0 - oy:y1 - oy, x0 - ox:x1 - ox, None]
        src = patch[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(np.float32)
        dst = image[y0:y1, x0:x1].astype(np.float32)
        image[y0:y1, x0:x1] = np.clip(alpha * src + (1 - alpha) * dst + 0.5, 0, 255).astype(np.uint8)

    m[0, 2] += ox
    m[1, 2] += oy
    pts = sample.points @ m[:, :2].T + m[:, 2]
    box_centre = tuple(float(v) for v in (np.array([cx, cy]) @ m[:, :2].T + m[:, 2]))
    return pts, box_centre, sample.box.height * scale


def wear(image: np.ndarray, size: float, rng: np.random.Generator,
         chance: tuple[float, float, float] = (DEGRADE_P,) * 3) -> tuple[np.ndarray, dict]:
    """The photo of a face `size` px wide worn as the benchmark wears it: blurred, darkened (by
    a gain or a gamma) and JPEG re-encoded, each with its `chance`. Returns (the photo, what
    was done)."""
    degr: dict = {}
    if rng.random() < chance[0]:
        sigma = float(rng.uniform(1.0, 2.5) * np.clip((size / 100.0) ** 0.3, 0.75, 1.5))
        image = cv2.GaussianBlur(image, (0, 0), sigma)
        degr["blur"] = {"sigma": round(sigma, 2)}
    if rng.random() < chance[1]:
        if rng.random() < 0.5:
            gain = float(rng.uniform(0.3, 0.5))
            image = np.clip(image.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
            degr["dark"] = {"gain": round(gain, 2)}
        else:
            gamma = float(rng.uniform(1.8, 2.6))
            lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
            image = cv2.LUT(image, lut)
            degr["dark"] = {"gamma": round(gamma, 2)}
    if rng.random() < chance[2]:
        quality = int(rng.integers(25, 51))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        degr["jpeg"] = {"quality": quality}
    return image, degr


def build_photo(index: int, sample: FaceSample, roll: float, size: float, canvas: tuple[int, int],
                backgrounds: Backgrounds, seed: int) -> Photo:
    rng = np.random.default_rng([seed, index, 1])
    face_img = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
    if face_img is None:
        raise FileNotFoundError(f"cannot read image {sample.image_path}")
    width, height = canvas
    image = backgrounds.canvas(rng, sample.image_path, width, height)
    centre = place(rng, canvas, patch_side(size), size, roll)
    pts, centre, box_height = paste_face(image, sample, roll, size, centre, face_img)

    image, degr = wear(image, size, rng)
    return Photo(index, sample, roll, size, canvas, image, pts, centre, box_height, degr)


def plan(n: int, seed: int) -> list[tuple[float, float, tuple[int, int]]]:
    """(roll, size, canvas) per photo. Rolls cycle through the buckets; canvases alternate per
    cycle of six (so every bucket gets both canvases equally)."""
    rng = np.random.default_rng([seed, 0])
    out = []
    for i in range(n):
        bucket = ROLL_BUCKETS[i % len(ROLL_BUCKETS)]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        size = float(math.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))))
        canvas = CANVASES[(i // len(ROLL_BUCKETS)) % len(CANVASES)]
        if canvas == CANVASES[0]:
            size = min(size, MAX_SIZE_SMALL)
        out.append((sign * bucket if bucket else 0.0, size, canvas))
    return out


# --- scoring ------------------------------------------------------------------------------
def holds(face, points: np.ndarray) -> bool:
    """Whether the face's region (its box turned by -roll) holds the true eyes and nose."""
    up = transform(np.asarray(points, np.float64)[:3], rotation_about(face.box.center, face.roll))
    b = face.box
    return bool(((up[:, 0] >= b.left) & (up[:, 0] <= b.right) & (up[:, 1] >= b.top) & (up[:, 1] <= b.bottom)).all())


def score(photo: Photo, faces) -> tuple[dict, object]:
    """Found (a returned face's region holds the true eyes and nose), the closest such face's
    error (% of the true box width, per point and mean) and the false detections."""
    best, best_err, hits, false_conf, false_score, false_prob = None, None, 0, [], [], []
    for face in faces:
        if not holds(face, photo.points):
            if face.confidence is not None:
                false_conf.append(round(float(face.confidence), 4))
            false_score.append(round(float(face.score), 4))
            false_prob.append(None if face.face_probability is None else round(face.face_probability, 4))
            continue
        hits += 1
        err = np.linalg.norm(np.asarray(face.points) - photo.points, axis=1) / photo.size * 100.0
        if best_err is None or err.mean() < best_err.mean():
            best, best_err = face, err
    rec = {"found": best is not None, "faces_returned": len(faces), "false_faces": len(faces) - hits,
           "false_confidences": false_conf, "false_scores": false_score, "false_face_probabilities": false_prob}
    if best is not None:
        # Face.roll turns the photo upright, as does the eye-line roll of the truth (which is
        # about minus the roll given plus the source face's own lean of a few degrees).
        roll_err = (best.roll - eye_roll(photo.points) + 180.0) % 360.0 - 180.0
        rec.update(error=round(float(best_err.mean()), 4), score=round(float(best.score), 4),
                   point_errors=[round(float(e), 4) for e in best_err],
                   roll_found=round(float(best.roll), 2), roll_error=round(float(roll_err), 2),
                   points_found=[[round(float(x), 2), round(float(y), 2)] for x, y in best.points])
        if best.confidence is not None:
            rec.update(confidence=round(float(best.confidence), 4),
                       point_confidence=[round(float(c), 4) for c in best.point_confidence])
        if best.face_probability is not None:
            rec["face_probability"] = round(best.face_probability, 4)
    return rec, best


# --- examples -----------------------------------------------------------------------------
def draw_points(img: np.ndarray, pts: np.ndarray, colour, r: int) -> None:
    for x, y in pts:
        cv2.circle(img, (int(round(x)), int(round(y))), r, colour, -1, cv2.LINE_AA)


def composite(photo: Photo, faces, best) -> np.ndarray:
    """The photo at 480 rows beside a 480x480 zoom of the face; truth green, the matched face
    red (points and region outline), other returned faces orange."""
    green, red, dim = (0, 220, 0), (0, 0, 255), (0, 140, 255)
    k = 480.0 / photo.image.shape[0]
    left = cv2.resize(photo.image, (int(round(photo.image.shape[1] * k)), 480), interpolation=cv2.INTER_AREA)
    for f in faces:
        cv2.polylines(left, [np.round(f.corners() * k).astype(np.int32)], True,
                      red if f is best else dim, 1, cv2.LINE_AA)
    draw_points(left, photo.points * k, green, 3)
    for f in faces:
        draw_points(left, np.asarray(f.points) * k, red if f is best else dim, 2)
    side = REGION * photo.size
    cx, cy = photo.center
    z = 480.0 / side
    m = np.array([[z, 0, 240 - cx * z], [0, z, 240 - cy * z]])
    zoom = cv2.warpAffine(photo.image, m, (480, 480), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    zp = lambda p: np.asarray(p, np.float64) @ m[:, :2].T + m[:, 2]  # noqa: E731
    for f in faces:
        cv2.polylines(zoom, [np.round(zp(f.corners())).astype(np.int32)], True,
                      red if f is best else dim, 1, cv2.LINE_AA)
    draw_points(zoom, zp(photo.points), green, 4)
    for f in faces:
        draw_points(zoom, zp(f.points), red if f is best else dim, 3)
    label = (f"#{photo.index} roll {photo.roll:+.0f} size {photo.size:.0f}px "
             f"{'+'.join(photo.degradations) or 'clean'} "
             + ("missed" if best is None else f"err {np.linalg.norm(np.asarray(best.points) - photo.points, axis=1).mean() / photo.size * 100:.1f}%"))
    out = np.hstack([left, np.full((480, 4, 3), 255, np.uint8), zoom])
    cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def example_indices(n: int, count: int = 12) -> set[int]:
    """Two photos per roll bucket, one on each canvas, from the middle of the set."""
    picks = set()
    nb = len(ROLL_BUCKETS)
    for k in range(count):
        bucket, canvas = k % nb, (k // nb) % 2
        cands = [i for i in range(n) if i % nb == bucket and (i // nb) % 2 == canvas]
        if cands:
            picks.add(cands[len(cands) // 2])
    return picks


# --- tables -------------------------------------------------------------------------------
def pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def summary(recs: list[dict]) -> dict:
    found = [r for r in recs if r["found"]]
    far = [r for r in recs if r["size"] >= FAR_FACE]
    out = {"faces": len(recs), "found": len(found), "found_pct": pct(len(found), len(recs)),
           "faces_far": len(far), "found_far_pct": pct(sum(r["found"] for r in far), len(far)),
           "error": round(float(np.mean([r["error"] for r in found])), 4) if found else None,
           "point_errors": ([round(float(v), 4) for v in np.mean([r["point_errors"] for r in found], axis=0)]
                            if found else None),
           "fail_pct": pct(sum(r["error"] > 5.0 for r in found), len(found)),
           "roll_error_abs": round(float(np.mean([abs(r["roll_error"]) for r in found])), 2) if found else None,
           "ms_median": round(float(np.median([r["ms"] for r in recs])), 1) if recs else None,
           "ms_mean": round(float(np.mean([r["ms"] for r in recs])), 1) if recs else None,
           "false_faces_per_photo": round(float(np.mean([r["false_faces"] for r in recs])), 3) if recs else None}
    if recs and all("false_seen_by_referee" in r for r in recs):
        out["unconfirmed_false_per_photo"] = round(float(np.mean(
            [r["false_faces"] - r["false_seen_by_referee"] for r in recs])), 4)
    return out


def fmt(v, spec: str = ".1f", width: int = 6) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}{spec}}"


def tables(recs: list[dict]) -> dict:
    by_roll = {b: summary([r for r in recs if r["bucket"] == b]) for b in ROLL_BUCKETS}
    base = by_roll[0]["error"]
    for b, s in by_roll.items():
        s["ratio_to_0"] = round(s["error"] / base, 3) if s["error"] is not None and base else None
    return {
        "overall": summary(recs),
        "by_roll": by_roll,
        "by_size": {f"{lo}-{hi}": summary([r for r in recs if lo <= r["size"] < hi or (hi == SIZE_BUCKETS[-1][1] and r["size"] == hi)])
                    for lo, hi in SIZE_BUCKETS},
        "by_canvas": {f"{w}x{h}": summary([r for r in recs if tuple(r["canvas"]) == (w, h)]) for w, h in CANVASES},
        "by_degradation": {"none": summary([r for r in recs if not r["degradations"]]),
                           **{d: summary([r for r in recs if d in r["degradations"]]) for d in DEGRADATIONS}},
    }


def checks(t: dict) -> list[dict]:
    out = []
    worst = [(b, t["by_roll"][b]["found_far_pct"]) for b in ROLL_BUCKETS if b <= TARGET_MAX_ROLL]
    ok = all(v is not None and v >= TARGET_FOUND for _, v in worst)
    out.append({"name": f"(a) found >= {TARGET_FOUND:g}% for faces >= {FAR_FACE:g} px at every roll up to {TARGET_MAX_ROLL}",
                "pass": ok, "detail": ", ".join(f"{b}: {fmt(v, '.1f', 0)}%" for b, v in worst)})
    e0, e45 = t["by_roll"][0]["error"], t["by_roll"][45]["error"]
    ratio = e45 / e0 if e0 and e45 is not None else None
    out.append({"name": f"(b) mean error at 45 within {TARGET_RATIO:g}x of the error at 0",
                "pass": ratio is not None and ratio <= TARGET_RATIO,
                "detail": f"{fmt(e45, '.2f', 0)}% / {fmt(e0, '.2f', 0)}% = {fmt(ratio, '.2f', 0)}x"})
    return out


def print_tables(t: dict, checks_: list[dict]) -> None:
    pts = " ".join(f"{p:>5}" for p in POINTS)
    print("\n1. By roll (degrees; error in % of the true box width, found faces; "
          f"'>={FAR_FACE:g}px' = faces at least that wide)")
    print(f"{'roll':>5} {'faces':>5} {'found%':>6} {'>=40px%':>7} {'(n)':>5} {'err%':>6} {'x0':>5} {'fail%':>6} "
          f"| {pts} | {'|droll|':>7}")
    for b, s in t["by_roll"].items():
        pe = " ".join(fmt(v, ".2f", 5) for v in (s["point_errors"] or [None] * 5))
        print(f"{b:>5} {s['faces']:>5} {fmt(s['found_pct'])} {fmt(s['found_far_pct'], '.1f', 7)} {s['faces_far']:>5} "
              f"{fmt(s['error'], '.2f')} {fmt(s['ratio_to_0'], '.2f', 5)} {fmt(s['fail_pct'])} | {pe} | "
              f"{fmt(s['roll_error_abs'], '.1f', 7)}")
    s = t["overall"]
    pe = " ".join(fmt(v, ".2f", 5) for v in (s["point_errors"] or [None] * 5))
    print(f"{'all':>5} {s['faces']:>5} {fmt(s['found_pct'])} {fmt(s['found_far_pct'], '.1f', 7)} {s['faces_far']:>5} "
          f"{fmt(s['error'], '.2f')} {'':>5} {fmt(s['fail_pct'])} | {pe} | {fmt(s['roll_error_abs'], '.1f', 7)}")
    print("   (fail% = found faces with error > 5%; |droll| = mean |roll found - roll of the true eye line|,\n"
          "    which differs from the bucket by the source face's own lean, a few degrees)")

    print("\n2. By face size (true box width, px)")
    print(f"{'size':>8} {'faces':>5} {'found%':>6} {'err%':>6}")
    for k, s in t["by_size"].items():
        print(f"{k:>8} {s['faces']:>5} {fmt(s['found_pct'])} {fmt(s['error'], '.2f')}")

    print("\n3. By canvas")
    print(f"{'canvas':>9} {'faces':>5} {'found%':>6} {'err%':>6} {'ms p50':>7} {'ms mean':>7} {'false/photo':>11}")
    for k, s in t["by_canvas"].items():
        print(f"{k:>9} {s['faces']:>5} {fmt(s['found_pct'])} {fmt(s['error'], '.2f')} {fmt(s['ms_median'], '.0f', 7)} "
              f"{fmt(s['ms_mean'], '.0f', 7)} {fmt(s['false_faces_per_photo'], '.2f', 11)}")

    print("\n4. By degradation (a photo with several counts in each)")
    print(f"{'':>6} {'faces':>5} {'found%':>6} {'>=40px%':>7} {'err%':>6}")
    for k, s in t["by_degradation"].items():
        print(f"{k:>6} {s['faces']:>5} {fmt(s['found_pct'])} {fmt(s['found_far_pct'], '.1f', 7)} {fmt(s['error'], '.2f')}")

    s = t["overall"]
    if "unconfirmed_false_per_photo" in s:
        print(f"\n   false faces a photo {s['false_faces_per_photo']:.3f}; where the referee (MediaPipe) sees no "
              f"face: {s['unconfirmed_false_per_photo']:.4f} (the rest are real faces in the background pieces)")

    print("\n5. Targets")
    for c in checks_:
        print(f"{'PASS' if c['pass'] else 'FAIL'} {c['name']}: {c['detail']}")


def verifier_cases(recs: list[dict]) -> tuple[list, list, bool]:
    """What the verifier judged in a run that kept every face (--min-confidence 0): (confidence,
    detector score, second opinion or None) of each found face of FAR_FACE px and more;
    (confidence, score, second opinion, whether the referee saw a face there, None without it)
    of each false face; whether the run had a referee."""
    real = [(r["confidence"], r["score"], r.get("face_probability")) for r in recs
            if r["found"] and r["size"] >= FAR_FACE and "confidence" in r]
    refereed = bool(recs) and all("false_referee" in r for r in recs)
    false = []
    for r in recs:
        n = len(r["false_confidences"])
        false += zip(r["false_confidences"], r["false_scores"], r.get("false_face_probabilities") or [None] * n,
                     r["false_referee"] if refereed else [None] * n)
    return real, false, refereed


def sure_rule_table(recs: list[dict], least: float = 0.2, scores=(0.6, 0.7, 0.75, 0.8, 0.85, 0.9),
                    shares=(0.1, 0.15, 0.25, 0.35, 0.5, 0.75)) -> list[dict]:
    """From a run that kept every face (--min-confidence 0): for each rule "detector score >= s
    and confidence >= share x `least`" on top of "confidence >= least", the faces of FAR_FACE px
    and more it keeps that `least` alone drops, and the false faces it lets in (the choice of
    common.landmarker.SURE_SHARE and the detector's sure_score)."""
    real, false, _ = verifier_cases(recs)
    real, false = [(c, s) for c, s, _ in real], [(c, s) for c, s, _, _ in false]
    out = []
    for s in scores:
        for k in shares:
            extra = lambda pairs: sum(1 for c, sc in pairs if k * least <= c < least and sc >= s)  # noqa: E731
            out.append({"score": s, "share": k, "faces_kept": extra(real), "false_let_in": extra(false)})
    return out


def print_sure_rule(table: list[dict], photos: int, least: float = 0.2) -> None:
    shares = sorted({row["share"] for row in table})
    print(f"\n6. Sure-face rule: faces >= {FAR_FACE:g} px kept / false faces let in over {photos} photos, "
          f"beyond confidence >= {least:g}, by the detector's score (rows) and the share of {least:g} (columns)")
    print(f"{'score':>6} " + " ".join(f"{k:>9g}" for k in shares))
    for s in sorted({row["score"] for row in table}):
        cells = {row["share"]: row for row in table if row["score"] == s}
        print(f"{s:>6g} " + " ".join(f"{cells[k]['faces_kept']:>4}/{cells[k]['false_let_in']:<4}" for k in shares))


def threshold_table(recs: list[dict], keeps,
                    thresholds=(0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)) -> list[dict]:
    """From a run that kept every face (--min-confidence 0): per threshold t of the verifier
    (`keeps(confidence, score, t, second opinion)`, the Landmarker's rule, sure-face rule and
    second opinion included), the faces of FAR_FACE px and more found that it drops and the
    false faces it keeps (the choice of common.landmarker.MIN_CONFIDENCE); from a run with
    --referee also those of the false faces kept that the referee does not see as faces
    ("unconfirmed_kept")."""
    real, false, refereed = verifier_cases(recs)
    out = []
    for t in thresholds:
        row = {"threshold": t, "faces_dropped": sum(not keeps(c, s, t, o) for c, s, o in real),
               "false_kept": sum(bool(keeps(c, s, t, o)) for c, s, o, _ in false), "faces": len(real),
               "false": len(false)}
        if refereed:
            row["unconfirmed_kept"] = sum(bool(keeps(c, s, t, o)) and not seen for c, s, o, seen in false)
        out.append(row)
    return out


def print_thresholds(table: list[dict], photos: int) -> None:
    print(f"\n7. Verifier threshold, with the sure-face rule and the second opinion: of {table[0]['faces']} "
          f"faces >= {FAR_FACE:g} px found and {table[0]['false']} false faces over {photos} photos, those it "
          "drops and keeps")
    refereed = "unconfirmed_kept" in table[0]
    print(f"{'threshold':>9} {'faces dropped':>13} {'false kept':>10} {'false/photo':>11}"
          + (f" {'not confirmed by the referee':>28}" if refereed else ""))
    for row in table:
        print(f"{row['threshold']:>9g} {row['faces_dropped']:>13} {row['false_kept']:>10} "
              f"{row['false_kept'] / photos:>11.4f}" + (f" {row['unconfirmed_kept']:>28}" if refereed else ""))


# --- main ---------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=600, help="test faces (photos), spread evenly over the test list")
    ap.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR)
    ap.add_argument("--angles", type=float, nargs="+",
                    help="rotations searched (degrees; default: the detector's own, "
                         f"none for blaze, {' '.join(f'{a:g}' for a in DEFAULT_ANGLES)} for the others)")
    ap.add_argument("--model", help=MODEL_HELP)
    ap.add_argument("--min-face", type=float, metavar="PX",
                    help="mtcnn: search faces down to PX pixels in photos of any size, upright and "
                         "turned (default: the detector's size-dependent limits)")
    ap.add_argument("--min-confidence", type=float, metavar="P",
                    help="drop faces whose confidence is below P (default: the Landmarker's; 0 "
                         "keeps all, to measure the confidence: common.confidence --report --wild)")
    ap.add_argument("--split", choices=("test", "train"), default="test",
                    help="the split whose faces and backgrounds are used (default test; train only "
                         "to fit on, e.g. the verifier's sure-face rule)")
    add_referee_argument(ap)
    ap.add_argument("--screen", action="store_true",
                    help="cut the backgrounds from no piece that covers a face YuNet finds in the "
                         "CUHK photos (benchmarks/screen.py), so that a false face is no face at all; "
                         "other photos than without it")
    ap.add_argument("--data", help=f"CUHK data folder (default: ${DATA_ENV}, else {rel(DEFAULT_DATA)})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write every photo's record and the tables here")
    ap.add_argument("--examples", type=Path, help="write about 12 drawn composites (and a few misses) here")
    ap.add_argument("--save-set", type=Path, help="write the photos (JPEG q95) and a CUHK-format list here")
    args = ap.parse_args()
    if args.faces < 1:
        ap.error("--faces must be at least 1")

    from common.boxrule import RuleMissing
    from common.cascade import ModelMissing
    from common.detectors import WeightsMissing
    from common.landmarker import MIN_CONFIDENCE, Landmarker

    test_list, samples = read_split(args.data, "wild.py", args.split)
    referee = None
    if args.referee:
        try:
            referee = open_referee(args.referee)
        except PeerUnavailable as exc:
            print(f"wild.py: {exc}", file=sys.stderr)
            return 2
    try:
        options = {} if args.min_face is None else {"min_face_everywhere": args.min_face}
        if args.min_confidence is not None:
            options["min_confidence"] = args.min_confidence
        lm = Landmarker(model=args.model, detector=args.detector, angles=args.angles, **options)
    except (WeightsMissing, RuleMissing, ModelMissing, ValueError) as exc:
        print(f"wild.py: cannot load the landmarker: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    n = min(args.faces, len(samples))
    chosen = [samples[int(i)] for i in np.round(np.linspace(0, len(samples) - 1, n)).astype(int)]
    others = open_screen(ap, test_list.parent) if args.screen else None
    backgrounds = Backgrounds(samples, others)
    photos_plan = plan(n, args.seed)
    show = example_indices(n) if args.examples else set()
    misses_left = 4
    if args.examples:
        args.examples.mkdir(parents=True, exist_ok=True)
    list_lines, meta = [], []
    if args.save_set:
        (args.save_set / "images").mkdir(parents=True, exist_ok=True)

    print(f"{n} synthetic photos from {rel(test_list)}; detector {args.detector} {lm.detector.settings()}, angles "
          f"{' '.join(f'{a:g}' for a in lm.angles)}; model {rel(lm.cascade.model_root)} "
          f"(level {lm.cascade.levels}); seed {args.seed}" + ("; backgrounds screened" if args.screen else ""),
          flush=True)
    recs = []
    start = time.perf_counter()
    build_s = 0.0
    for i in tqdm(range(n), desc="photos", unit="photo", dynamic_ncols=True):
        roll, size, canvas = photos_plan[i]
        t0 = time.perf_counter()
        photo = build_photo(i, chosen[i], roll, size, canvas, backgrounds, args.seed)
        t1 = time.perf_counter()
        faces = lm(photo.image)
        ms = (time.perf_counter() - t1) * 1000.0
        build_s += t1 - t0
        rec, best = score(photo, faces)
        if referee is not None:
            # One flag per false face, in the order of false_confidences.
            rec["false_referee"] = [bool(sees_face(referee, photo.image, f)) for f in faces
                                    if not holds(f, photo.points)]
            rec["false_seen_by_referee"] = sum(rec["false_referee"])
        rec = {"index": i, "source": rel(photo.source.image_path), "roll": photo.roll, "bucket": photo.bucket,
               "eye_roll": round(eye_roll(photo.points), 2),
               "size": round(photo.size, 2), "canvas": list(canvas), "degradations": photo.degradations,
               "ms": round(ms, 2), **rec,
               "truth": [[round(float(x), 2), round(float(y), 2)] for x, y in photo.points]}
        recs.append(rec)
        if i in show:
            cv2.imwrite(str(args.examples / f"wild_{i:04d}_roll{photo.roll:+.0f}_{photo.size:.0f}px.png"),
                        composite(photo, faces, best))
        elif args.examples and misses_left and not rec["found"] and photo.size >= FAR_FACE \
                and photo.bucket <= TARGET_MAX_ROLL:
            misses_left -= 1
            cv2.imwrite(str(args.examples / f"miss_{i:04d}_roll{photo.roll:+.0f}_{photo.size:.0f}px.png"),
                        composite(photo, faces, best))
        if args.save_set:
            path = args.save_set / "images" / f"{i:05d}.jpg"
            cv2.imwrite(str(path), photo.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            list_lines.append(format_line(FaceSample(path, photo.upright_box, photo.points), args.save_set))
            meta.append({k: rec[k] for k in ("index", "source", "roll", "size", "canvas", "degradations")})
    elapsed = time.perf_counter() - start
    if others is not None:
        others.save()

    t = tables(recs)
    c = checks(t)
    print_tables(t, c)
    if args.min_confidence == 0:
        print_sure_rule(sure_rule_table(recs, least=MIN_CONFIDENCE), n, least=MIN_CONFIDENCE)
        print_thresholds(threshold_table(recs, lm.keeps), n)
    print(f"\nelapsed {elapsed:.0f} s ({build_s:.0f} s building photos, "
          f"{sum(r['ms'] for r in recs) / 1000:.0f} s in the landmarker)")
    if args.save_set:
        (args.save_set / "wildImageList.txt").write_text("\n".join(list_lines) + "\n")
        (args.save_set / "wild_meta.json").write_text(json.dumps(
            {"note": "box = the true box in the face's upright frame about its centre in the photo; "
                     "the face region is that box rotated by `roll` (counter-clockwise as shown)",
             "photos": meta}, indent=1))
        print(f"set written to {args.save_set}/ (wildImageList.txt, images/, wild_meta.json)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "settings": {"faces": n, "detector": args.detector, "angles": list(lm.angles), "seed": args.seed,
                         "model": rel(lm.cascade.model_root), "levels": lm.cascade.levels,
                         "data": rel(test_list), "screen": args.screen, "elapsed_s": round(elapsed, 1)},
            "tables": t, "checks": c, "photos": recs}, indent=1))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
