"""The box rule: a detector's box -> the box convention the nets were trained on, one rule
file per detector, as the Landmarker applies it. common/boxrule_fit.py fits it on the training
list (offline, once per detector).

A detector's box is not the dataset's box (CUHK boxes are lower and tighter than most
detectors'). The rule

    true centre = detector centre + (dx * w, dy * h),  true size = (sx * w, sy * h)

is measured on the training list and stored with its fit statistics and the detector settings
it holds for in model/box_rule_<detector>.json. For a detector that also gives five points
(MTCNN) a second rule is fitted: the true box's edges as a linear function of those points,
relative to the detector box (least squares). It places the box by the face's features rather
than by the detector's box alone (on the test list: mean IoU 0.85 against 0.81), and the
Landmarker uses it when it is there.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from common.box import Box
from common.detectors import Detection
from common.orientation import roll_of
from common.paths import MODEL_DIR, rel
from common.rotation import invert, rotation_about, transform

FIT_COMMAND = "python -m common.boxrule_fit --detector NAME"
T = TypeVar("T")


class RuleMissing(FileNotFoundError):
    pass


def rule_path(detector: str) -> Path:
    return MODEL_DIR / f"box_rule_{detector}.json"


@dataclass(frozen=True)
class BoxRule:
    """Detector box -> training-convention box (shift in detector widths/heights, scale)."""
    dx: float = 0.0
    dy: float = 0.0
    sx: float = 1.0
    sy: float = 1.0

    def apply(self, box: Box) -> Box:
        cx, cy = box.center
        return Box.around(cx + self.dx * box.width, cy + self.dy * box.height,
                          self.sx * box.width / 2.0, self.sy * box.height / 2.0)


IDENTITY = BoxRule()


def _point_features(box: Box, points: np.ndarray) -> np.ndarray:
    """[1, x1, y1, ..., x5, y5] with the points relative to the box (0..1 across it)."""
    rel = (np.asarray(points, dtype=np.float64) - (box.left, box.top)) / (box.width, box.height)
    return np.concatenate([[1.0], rel.ravel()])


@dataclass(frozen=True)
class PointsRule:
    """Detector box + its five points -> training-convention box: each edge (left, right, top,
    bottom, relative to the detector box) a linear function of the points (relative too)."""
    weights: tuple[tuple[float, ...], ...]  # 11 rows (1, x1, y1, ... x5, y5) x 4 edges

    def apply(self, box: Box, points: np.ndarray) -> Box:
        l, r, t, b = _point_features(box, points) @ np.asarray(self.weights)
        return Box(box.left + l * box.width, box.left + r * box.width,
                   box.top + t * box.height, box.top + b * box.height)

    @classmethod
    def fit(cls, detections, true_boxes) -> "PointsRule":
        x = np.array([_point_features(d.box, d.points) for d in detections])
        y = np.array([((t.left - d.box.left) / d.box.width, (t.right - d.box.left) / d.box.width,
                       (t.top - d.box.top) / d.box.height, (t.bottom - d.box.top) / d.box.height)
                      for d, t in zip(detections, true_boxes)])
        w, *_ = np.linalg.lstsq(x, y, rcond=None)
        return cls(tuple(tuple(round(float(v), 6) for v in row) for row in w))


@dataclass(frozen=True)
class RuleFile:
    rule: BoxRule
    detector: str
    settings: dict   # the detector settings the rule was fitted with
    fit: dict        # fit statistics
    points_rule: PointsRule | None = None
    # Where the placed boxes lie against the true ones on the training faces (`residual_stats`):
    # the box noise level 1 is trained on (dataset/level1.py).
    residual: dict | None = None

    def place(self, det: Detection) -> tuple[Box, float]:
        """A detection's box in the training convention, and the roll that makes the face
        upright: from the detector's eye points where it has them, else the rotation it was
        found at. The rules are applied in the face's upright frame."""
        roll = roll_of(det)
        cx, cy = det.box.center
        to_upright = rotation_about((cx, cy), roll)
        seen = Box.around(cx, cy, det.box.width / 2, det.box.height / 2)
        if self.points_rule is not None and det.points is not None:
            upright = self.points_rule.apply(seen, transform(det.points, to_upright))
        else:
            upright = self.rule.apply(seen)
        (ux, uy), = transform([upright.center], invert(to_upright))
        return Box.around(ux, uy, upright.width / 2, upright.height / 2), roll


def read_rule_file(path: str | os.PathLike, what: str, how: str, build: Callable[[dict], T]) -> T:
    """`build` of the JSON in a rule file; RuleMissing (saying `how` it is made) when there is
    none, ValueError when it does not hold what `build` reads."""
    path = Path(path)
    if not path.is_file():
        raise RuleMissing(f"{what} {rel(path)} not found; make it with {how}")
    try:
        return build(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{what} {rel(path)} is not a valid rule file: {exc}") from None


def load_rule(path: str | os.PathLike) -> RuleFile:
    def build(data: dict) -> RuleFile:
        points = data.get("points_rule")
        return RuleFile(BoxRule(**data["rule"]), data["detector"], data["settings"], data.get("fit", {}),
                        None if points is None else PointsRule(tuple(map(tuple, points["weights"]))),
                        data.get("residual"))
    return read_rule_file(path, "box rule", f"`{FIT_COMMAND}` (needs the training data)", build)
