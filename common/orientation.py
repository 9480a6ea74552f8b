"""Tilted heads: search an image at several rotations, and measure a face's roll.

Detectors find upright faces (MTCNN to about +-25 degrees of roll, Haar less). A face rolled
further is found by running the detector on rotated copies of the image and mapping what it
finds back into the image. Angles are degrees counter-clockwise as the image is shown (the
convention of cv2.getRotationMatrix2D). The rotations themselves are common/rotation.py's.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from common.box import Box
from common.detectors import TURNED_SEARCH, Detection, Detector
from common.image import halving_to_photo, shrink_to
from common.rotation import eye_roll, invert, rotate_image, transform

# Rotations searched by the detectors that find upright faces only.
DEFAULT_ANGLES = TURNED_SEARCH
# Two detections from different rotations are the same face above this IoU.
MERGE_IOU = 0.4
# A detection with this share of its box inside another's is the same face.
INSIDE = 0.7
# Two detections of one face agree on its roll within this many degrees.
AGREE = 20.0


def map_back(det: Detection, inverse: np.ndarray, angle: float, scale=(1.0, 1.0)) -> Detection:
    """A detection made on the image rotated by `angle` (and shrunk by 1 / `scale`), in the
    image's own pixels."""
    cx, cy = transform(det.box.center, inverse)[0]
    box = Box.around(cx, cy, det.box.width * scale[0] / 2.0, det.box.height * scale[1] / 2.0)
    points = None if det.points is None else transform(det.points, inverse)
    return Detection(box, det.score, points, angle)


def same_face(a: Detection, b: Detection, limit: float = MERGE_IOU) -> bool:
    """Two detections (possibly from differently turned searches) of one face: their boxes
    overlap, one lies mostly inside the other (a face box and a loose box around it), or their
    centres are close for their size."""
    (ax, ay), (bx, by) = a.box.center, b.box.center
    size = min(a.box.width, a.box.height, b.box.width, b.box.height)
    if a.box.iou(b.box) > limit or math.hypot(ax - bx, ay - by) < 0.5 * size:
        return True
    smaller = min(a.box.width * a.box.height, b.box.width * b.box.height)
    return a.box.overlap(b.box) > INSIDE * smaller


def roll_of(det: Detection) -> float:
    """The roll a detection claims: from its eye points, else the search it came from."""
    return eye_roll(det.points) if det.points is not None else det.angle


def _angle_apart(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _best_of(group: Sequence[Detection]) -> Detection:
    """The detection to keep of one face found by several searches. A search turned far from
    the face may still report it, with its points turned the wrong way and a score as close to
    1 as the right one's; the searches that saw the face nearly upright agree on its roll. So:
    the detection whose roll has the most evidence: the summed log-odds of the detections that
    agree with it within AGREE degrees (log-odds, so that one sure detection, 0.9998, outweighs
    two unsure wrong ones, 0.87 and 0.72); of those that agree, the one from the search turned
    nearest the face's roll (it saw the face most nearly upright, on the least shrunk copy, and
    boxed it as the detector's box rule expects: a face seen 45 degrees off is boxed about 1.3x
    too wide, which on a 4000x3000 photo left MTCNN's face to the verifier's veto); then the
    higher score, then the smaller box (a loose box around a face is a worse box of it). The
    face's roll there is the one read by the surest detection agreeing with it, not each
    detection's own: a small box on part of the face that reads the roll a few degrees nearer
    its search's would otherwise win over the face's own box (BlazeFace with turned searches: a
    229 px face at -17 degrees kept a 72 px box inside it, read at -1, and was lost)."""
    several_searches = len({d.angle for d in group}) > 1   # (BlazeFace's are all from one)

    def rank(d: Detection) -> tuple:
        agreeing = [e for e in group if _angle_apart(roll_of(d), roll_of(e)) <= AGREE]
        evidence = sum(_log_odds(e.score) for e in agreeing)
        off_upright = (_angle_apart(d.angle, roll_of(max(agreeing, key=lambda e: e.score)))
                       if several_searches else 0.0)
        return round(evidence, 3), -off_upright, d.score, -d.box.width * d.box.height
    return max(group, key=rank)


def _log_odds(score: float) -> float:
    p = min(max(score, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def merge(found: Sequence[Detection], limit: float = MERGE_IOU) -> list[Detection]:
    """One detection per face (groups seeded by the highest score)."""
    remaining = sorted(found, key=lambda d: -d.score)
    kept: list[Detection] = []
    while remaining:
        group = [d for d in remaining if same_face(remaining[0], d, limit)]
        remaining = [d for d in remaining if not same_face(remaining[0], d, limit)]
        kept.append(_best_of(group))
    return kept


def search(detector: Detector, image: np.ndarray, angles: Sequence[float] = DEFAULT_ANGLES) -> list[Detection]:
    """Every face the detector finds in the image rotated by any of `angles`, in image pixels.

    The photo is first shrunk as far as the detector allows (detector.work_scale; the turned
    searches look for larger faces, so they may shrink it more), and the copy turned: large
    photos cost little more than small ones."""
    h, w = image.shape[:2]
    copies = {}  # turned or not -> (shrunk copy, kx, ky)
    found = []
    for angle in angles:
        turned = angle != 0
        if turned not in copies:
            copies[turned] = shrink_to(image, max(1, int(max(h, w) * detector.work_scale(h, w, turned))), quick=True)
        small, kx, ky = copies[turned]
        to_photo = halving_to_photo(kx, ky)   # copy pixels -> photo pixels
        min_face = detector.min_face(h, w, turned)
        rotated, m = rotate_image(small, angle)
        back = to_photo @ np.vstack([invert(m), [0.0, 0.0, 1.0]])
        found += [map_back(d, back[:2], angle, (kx, ky))
                  for d in detector.detect(rotated, None if min_face is None else min_face / kx)]
    return merge(found)
