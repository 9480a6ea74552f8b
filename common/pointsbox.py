"""The box a face's five points call for: how a tracked face gives its box in the next frame.

A face found in one frame is looked for in the next one where its points were, with the box
the cascade was trained on (the CUHK box convention). The rule that places that box is fitted
on the training list, from the true points to the true box, as the detector box rules are
(common.boxrule.PointsRule: each box edge a linear function of the points), in the face's
upright frame: the points are turned about their centre by the roll of the eye line, and
measured against a reference square about their centre, as wide as twice their RMS distance
from it (so the rule holds for any face size and roll).

    python -m common.pointsbox [--data DIR] [--out model/box_rule_points.json]
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from common.box import Box
from common.boxrule import PointsRule, read_rule_file
from common.paths import MODEL_DIR, rel
from common.rotation import eye_roll, invert, rotation_about, transform

POINTS_RULE = MODEL_DIR / "box_rule_points.json"


@dataclass(frozen=True)
class _Seen:
    """What PointsRule reads: a reference box and the points measured against it."""
    box: Box
    points: np.ndarray


def upright(points: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(the points turned upright about their centre, the roll that does it (degrees,
    common.rotation.eye_roll), the 2x3 matrix photo -> upright)."""
    pts = np.asarray(points, dtype=np.float64).reshape(5, 2)
    roll = eye_roll(pts)
    cx, cy = pts.mean(axis=0)
    m = rotation_about((float(cx), float(cy)), roll)
    return transform(pts, m), roll, m


def reference(points: np.ndarray) -> _Seen:
    """Upright points and the square the rule measures them against."""
    centre = points.mean(axis=0)
    half = max(math.sqrt(((points - centre) ** 2).sum(axis=1).mean()), 1e-6)
    return _Seen(Box.around(float(centre[0]), float(centre[1]), half, half), points)


@dataclass(frozen=True)
class PointsBoxRule:
    rule: PointsRule
    fit: dict

    def upright_box(self, points: np.ndarray) -> tuple[Box, float, np.ndarray]:
        """(the box in the face's upright frame, its roll, the matrix photo -> upright)."""
        up, roll, m = upright(points)
        seen = reference(up)
        return self.rule.apply(seen.box, seen.points), roll, m

    def place(self, points: np.ndarray) -> tuple[Box, float]:
        """The training-convention box for a face with these points (photo pixels, LE RE N LM
        RM), and the roll that makes it upright: as common.boxrule.RuleFile.place gives them
        for a detection, so the Landmarker's cascade can run on it (Region)."""
        box, roll, m = self.upright_box(points)
        (cx, cy), = transform([box.center], invert(m))
        return Box.around(cx, cy, box.width / 2, box.height / 2), roll


def load_points_rule(path: str | os.PathLike = POINTS_RULE) -> PointsBoxRule:
    return read_rule_file(path, "points box rule", "`python -m common.pointsbox` (needs the training list)",
                          lambda data: PointsBoxRule(PointsRule(tuple(map(tuple, data["weights"]))), data.get("fit", {})))


@functools.lru_cache(maxsize=None)
def default_points_rule() -> PointsBoxRule:
    """model/box_rule_points.json, read once."""
    return load_points_rule()


# --- fitting --------------------------------------------------------------------------------
def upright_pairs(samples) -> tuple[list[_Seen], list[Box]]:
    """Per listed face: its true points upright against their reference square, and its true
    box turned the same way (about the points' centre: its centre moves, its size stays)."""
    seen, boxes = [], []
    for s in samples:
        up, _, m = upright(s.points)
        seen.append(reference(up))
        (cx, cy), = transform([s.box.center], m)
        boxes.append(Box.around(cx, cy, s.box.width / 2, s.box.height / 2))
    return seen, boxes


def placed_ious(rule: PointsBoxRule, samples, points: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """IoU of the box placed from each face's points (its true points, or `points`) with its
    true box, both in the photo's axes (for the small rolls of the listed faces)."""
    pts = [s.points for s in samples] if points is None else points
    return np.array([rule.place(p)[0].iou(s.box) for p, s in zip(pts, samples)])


def fit(data: str | None, out: Path) -> dict:
    from common.listfile import read_list
    from common.paths import data_lists
    train_list, test_list = data_lists(data)
    train, test = read_list(train_list), read_list(test_list)
    rule = PointsBoxRule(PointsRule.fit(*upright_pairs(train)), {})
    stats = {}
    for part, samples, name in (("train", train, train_list.name), ("test", test, test_list.name)):
        ious = placed_ious(rule, samples)
        stats[part] = {"list": name, "faces": len(samples), "mean_iou": round(float(ious.mean()), 4),
                       "iou_above_0.7": round(float((ious > 0.7).mean()), 4)}
    result = {
        "about": "five points -> CUHK training box. The points are turned upright about their centre "
                 "(roll of the eye line) and taken relative to a square about that centre, half as wide "
                 "as their RMS distance from it; rows: 1, x1, y1, ..., x5, y5 (LE RE N LM RM, 0..1 across "
                 "the square); columns: left, right, top, bottom of the box relative to the square. "
                 "Made by `python -m common.pointsbox` from the true points and boxes of the training list.",
        "weights": [list(row) for row in rule.rule.weights],
        "fit": stats,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.pointsbox", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="data set folder (default: $DEEP_LANDMARK_DATA or dataset/train/)")
    ap.add_argument("--out", type=Path, default=POINTS_RULE, help=f"rule file (default: {rel(POINTS_RULE)})")
    args = ap.parse_args(argv)
    from common.listfile import ListFileError
    from common.paths import DataMissing
    try:
        result = fit(args.data, args.out)
    except (DataMissing, ListFileError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for part, s in result["fit"].items():
        print(f"{part}: {s['faces']} faces, mean IoU of the placed box with the true box "
              f"{s['mean_iou']:.3f}, above 0.7: {100 * s['iou_above_0.7']:.1f}%")
    print(f"wrote {rel(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
