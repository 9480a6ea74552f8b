"""The one entry point from a photo to five points per face:

    from common.landmarker import Landmarker
    faces = Landmarker()(image)            # image: BGR, BGRA or gray array, as cv2.imread gives
    faces = Landmarker(detector="haar")(image)

Steps: the detector searches the image at several rotations (common.orientation), each face's
detector box is mapped to the training box convention by the detector's fitted rule
(common.boxrule), and the cascade runs on it. A face rolled by more than UPRIGHT_ROLL degrees
is first turned upright: the cascade runs on an upright copy of the region around it (the roll
taken from the detector's eye points) and its points are mapped back into the photo. `predict`,
the web app, `evaluate --boxes detector` and the benchmarks all go through this class.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from common.box import Box, scale_points
from common.boxrule import BoxRule, load_rule, rule_path
from common.detectors import (DEFAULT_DETECTOR, FALLBACK_DETECTOR, Detection, WeightsMissing,
                              detector_names, load_detector)
from common.image import to_gray
from common.netfiles import MODEL_HELP
from common.nets import POINTS
from common.orientation import DEFAULT_ANGLES, invert, search, transform
from common.paths import rel

log = logging.getLogger(__name__)

# Faces rolled by more than this are turned upright before the cascade. The level-1 nets were
# trained with +-10 degrees of added roll on faces that already lean a little, but even on the
# CUHK test faces turning them upright helps a little (level-3 error on detector boxes,
# every 6th test face: 1.126% with 15 degrees here, 1.111% with 5).
UPRIGHT_ROLL = 5.0
# An upright copy holds the face box this many times over (level-2/3 patches reach past the
# box), at most CHIP_BOX_PX pixels across the box (larger faces are shrunk: the nets see
# 39 pixels of them anyway).
CHIP_MARGIN = 2.0
CHIP_BOX_PX = 256


@dataclass(frozen=True)
class Face:
    """A face found in a photo. `box` is in the training convention and `roll` (degrees
    counter-clockwise) turns the photo about the box centre so the face in it is upright: the
    face region is `box` rotated by -roll. `points` (5, 2) are photo pixels, order LE RE N LM
    RM, left and right as seen on the upright face."""
    box: Box
    points: np.ndarray
    roll: float = 0.0
    score: float = 1.0

    def corners(self) -> np.ndarray:
        """(4, 2) corners of the face region in the photo: top-left, top-right, bottom-right,
        bottom-left of the upright face."""
        b = self.box
        m = cv2.getRotationMatrix2D(b.center, -self.roll, 1.0)
        return transform([(b.left, b.top), (b.right, b.top), (b.right, b.bottom), (b.left, b.bottom)], m)

    def as_dict(self, ndigits: int = 2) -> dict:
        """JSON form shared by `predict --json` and the web API."""
        return {
            "box": {k: round(float(v), ndigits) for k, v in
                    zip(("left", "right", "top", "bottom"), self.box.as_tuple())},
            "roll": round(float(self.roll), 1),
            "score": round(float(self.score), 4),
            "points": {name: [round(float(x), ndigits), round(float(y), ndigits)]
                       for name, (x, y) in zip(POINTS, self.points)},
        }

    def scaled(self, fx: float, fy: float | None = None) -> "Face":
        """The same face in an image fx times as wide and fy times as high."""
        fy = fx if fy is None else fy
        return Face(self.box.scaled(fx, fy), scale_points(self.points, fx, fy), self.roll, self.score)


@dataclass(frozen=True)
class Region:
    """Where the cascade looks for one face: the training-convention box in the photo, the
    roll that makes it upright, and the detection it came from."""
    box: Box
    roll: float
    detection: Detection


class Landmarker:
    def __init__(self, model: str | os.PathLike | None = None, detector: str = DEFAULT_DETECTOR,
                 angles: Sequence[float] = DEFAULT_ANGLES, rule: str | os.PathLike | None = None,
                 cascade=None, mirror: bool = True, **detector_options):
        """`model`: cascade folder (common.netfiles.resolve_model); `detector`: a name in
        common.detectors.DETECTORS; `angles`: rotations searched (`(0,)`: upright faces only);
        `rule`: the detector's box rule file (default model/box_rule_<detector>.json);
        `mirror`: the cascade's test-time mirroring (common.cascade)."""
        from common.cascade import Cascade
        self.cascade = cascade or Cascade(model, mirror=mirror)
        rule = rule or rule_path(detector)
        self.rule_file = load_rule(rule)
        if self.rule_file.detector != detector:
            raise ValueError(f"the box rule {rel(Path(rule))} was fitted for the {self.rule_file.detector} "
                             f"detector, not {detector}")
        self.detector = load_detector(detector, **detector_options)
        self.angles = tuple(float(a) for a in angles)

    @property
    def rule(self) -> BoxRule:
        return self.rule_file.rule

    def __call__(self, image: np.ndarray) -> list[Face]:
        """Every face in `image` with its five points, left to right."""
        return self.landmarks(image, self.locate(image))

    # --- the two halves -----------------------------------------------------------------
    def locate(self, image: np.ndarray) -> list[Region]:
        """The faces the detector finds, as the regions the cascade will look at."""
        return [self.region(d) for d in search(self.detector, image, self.angles)]

    def region(self, det: Detection) -> Region:
        """A detection's box in the training convention and the roll that makes the face
        upright (common.boxrule.RuleFile.place)."""
        return Region(*self.rule_file.place(det), det)

    def landmarks(self, image: np.ndarray, regions: Sequence[Region]) -> list[Face]:
        """The cascade's five points for each region (any order), faces left to right."""
        levels = self.landmarks_levels(image, regions)
        faces = [Face(r.box, p, r.roll, r.detection.score) for r, p in zip(regions, levels[-1])] if regions else []
        return sorted(faces, key=lambda f: (f.box.left, f.box.top))

    def landmarks_levels(self, image: np.ndarray, regions: Sequence[Region],
                         levels: int | None = None) -> list[np.ndarray]:
        """Estimates (N, 5, 2) in photo pixels after each cascade level, one row per region."""
        grays, boxes, back = self.cascade_inputs(image, regions)
        return [to_photo(est, back) for est in self.cascade.estimates(grays, boxes, levels)]

    @staticmethod
    def cascade_inputs(image: np.ndarray, regions: Sequence[Region]):
        """(gray image per region, box in it, matrix back to the photo or None): the photo
        itself for an upright face, an upright copy of its surroundings for a rolled one (and
        a shrunk copy for a large one: the crops are then cut from few pixels)."""
        gray = None  # the whole photo in gray, made only when a face needs it
        grays, boxes, back = [], [], []
        for r in regions:
            if abs(r.roll) <= UPRIGHT_ROLL and max(r.box.width, r.box.height) <= CHIP_BOX_PX:
                gray = to_gray(image) if gray is None else gray
                grays.append(gray)
                boxes.append(r.box)
                back.append(None)
            else:
                chip, box, m = upright_chip(image, r.box, r.roll if abs(r.roll) > UPRIGHT_ROLL else 0.0)
                grays.append(to_gray(chip))
                boxes.append(box)
                back.append(invert(m))
        return grays, boxes, back


def to_photo(estimates: np.ndarray, back: Sequence[np.ndarray | None]) -> np.ndarray:
    """Points (N, 5, 2) found on the cascade's inputs, mapped into the photo."""
    out = np.array(estimates, dtype=np.float64, copy=True)
    for i, inv in enumerate(back):
        if inv is not None:
            out[i] = transform(out[i], inv)
    return out


def upright_chip(image: np.ndarray, box: Box, roll: float) -> tuple[np.ndarray, Box, np.ndarray]:
    """(an upright copy of the region around `box`, the box in it, the 2x3 matrix from photo
    to copy pixels). The copy turns the photo by `roll` about the box centre."""
    scale = min(1.0, CHIP_BOX_PX / max(box.width, box.height))
    side = int(np.ceil(CHIP_MARGIN * max(box.width, box.height) * scale)) | 1
    cx, cy = box.center
    m = cv2.getRotationMatrix2D((cx, cy), roll, scale)
    half = (side - 1) / 2.0
    m[0, 2] += half - cx
    m[1, 2] += half - cy
    chip = cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return chip, Box.around(half, half, box.width * scale / 2, box.height * scale / 2), m


# --- command-line options shared by predict, the web app's check and the benchmarks ----------
# Names the face detector when no --detector is given (predict, the web app, benchmarks).
DETECTOR_ENV = "DEEP_LANDMARK_DETECTOR"


class LandmarkerUnavailable(Exception):
    """The model, box rule or detector weights cannot be loaded; the message says why."""


def add_landmarker_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--model", help=MODEL_HELP)
    ap.add_argument("--detector", choices=detector_names(),
                    help=f"face detector (default: ${DETECTOR_ENV}, else {DEFAULT_DETECTOR}, or "
                         f"{FALLBACK_DETECTOR} when {DEFAULT_DETECTOR}'s weights are not installed)")
    ap.add_argument("--angles", type=float, nargs="+", default=list(DEFAULT_ANGLES), metavar="DEG",
                    help="rotations of the photo searched for tilted heads (default: "
                         f"{' '.join(f'{a:g}' for a in DEFAULT_ANGLES)})")
    ap.add_argument("--upright", action="store_true",
                    help="search the photo upright only (--angles 0): faster, misses heads "
                         "tilted by more than about 25 degrees")
    ap.add_argument("--min-face", type=float, metavar="PX",
                    help="search faces down to PX pixels wide in photos of any size, upright and "
                         "turned (mtcnn). Default: 24 upright and 40 turned, growing on photos "
                         "over about 0.4 megapixels so large photos cost little more (README)")
    ap.add_argument("--rule", help="box rule file (default: model/box_rule_<detector>.json)")
    ap.add_argument("--no-mirror", dest="mirror", action="store_false",
                    help="no test-time mirroring in the cascade: half its net time, level-3 error "
                         "1.14%% instead of 1.10%% of the box width (README)")


def make_landmarker(model=None, detector: str | None = None, angles=DEFAULT_ANGLES, rule=None,
                    warn=None, mirror: bool = True, **options) -> Landmarker:
    """A Landmarker. The detector: `detector`, else $DEEP_LANDMARK_DETECTOR, else the default
    one, or Haar when the default one's weights are not installed (said through `warn`, by
    default this module's logger). LandmarkerUnavailable when it cannot be made."""
    from common.boxrule import RuleMissing
    from common.cascade import ModelMissing
    warn = warn or log.warning
    detector = detector or os.environ.get(DETECTOR_ENV) or None
    try:
        try:
            return Landmarker(model, detector or DEFAULT_DETECTOR, angles, rule, mirror=mirror, **options)
        except WeightsMissing as exc:
            if detector is not None or exc.altered:
                raise
            warn(f"warning: {exc}; using the {FALLBACK_DETECTOR} detector instead")
            return Landmarker(model, FALLBACK_DETECTOR, angles, rule, mirror=mirror)
    except (ModelMissing, RuleMissing, WeightsMissing, ValueError, TypeError) as exc:
        raise LandmarkerUnavailable(str(exc)) from None


def landmarker_options(args: argparse.Namespace) -> dict:
    """make_landmarker's arguments from add_landmarker_args' options."""
    options = {} if args.min_face is None else {"min_face_everywhere": args.min_face}
    if options and (args.detector or os.environ.get(DETECTOR_ENV) or DEFAULT_DETECTOR) != "mtcnn":
        raise LandmarkerUnavailable("--min-face applies to the mtcnn detector only")
    return dict(model=args.model, detector=args.detector,
                angles=(0.0,) if args.upright else tuple(args.angles), rule=args.rule,
                mirror=getattr(args, "mirror", True), **options)


def landmarker_from_args(args: argparse.Namespace) -> Landmarker:
    """make_landmarker from add_landmarker_args' options; its warning goes to the log (stderr
    when nothing configures logging)."""
    return make_landmarker(**landmarker_options(args))
