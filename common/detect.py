"""Face detection (OpenCV's Haar cascade) mapped to the training box convention, and the one
code path from an image to five points per face (used by common.predict and the webapp).

A detector's box is not the dataset's box: the nets were trained on the CUHK boxes, which are
placed differently (lower and tighter than Haar's). The mapping rule

    true centre = detector centre + (dx * w, dy * h),  true size = (sx * w, sy * h)

is measured on the training list by `python -m common.detect --fit` and stored, with its fit
statistics, in model/box_rule.json.

    python -m common.detect --fit [--data DIR] [--limit N] [--test-limit N] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from common.box import Box, scale_points
from common.nets import POINTS
from common.paths import MODEL_DIR, rel

RULE_PATH = MODEL_DIR / "box_rule.json"
# The model folder predict and the webapp use when none is named: $DEEP_LANDMARK_MODEL, else
# common.cascade.default_model().
MODEL_ENV = "DEEP_LANDMARK_MODEL"
# Largest image side the Haar detector looks at; larger images are searched on a shrunk copy.
DETECT_MAX_SIDE = 1024
# A detection counts as the listed face when their IoU is above this.
MATCH_IOU = 0.3


class RuleMissing(FileNotFoundError):
    pass


@dataclass(frozen=True)
class HaarSettings:
    """How the Haar detector runs. Stored with the rule: the rule holds for these only."""
    cascade: str = "haarcascade_frontalface_alt2.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 4
    min_size: int = 24  # pixels of the (possibly shrunk) image searched


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


# --- detection ------------------------------------------------------------------------------
def to_gray(image: np.ndarray) -> np.ndarray:
    """8-bit gray from gray, BGR or BGRA."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"not an image array: shape {image.shape}")


def load_rule(path: str | os.PathLike = RULE_PATH) -> tuple[BoxRule, HaarSettings, dict]:
    """(rule, detector settings, fit statistics) from a rule file."""
    path = Path(path)
    if not path.is_file():
        raise RuleMissing(f"box rule {rel(path)} not found; make it with "
                          "`python -m common.detect --fit` (needs the training data)")
    try:
        data = json.loads(path.read_text())
        return BoxRule(**data["rule"]), HaarSettings(**data["detector"]), data.get("fit", {})
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"box rule {rel(path)} is not a valid rule file: {exc}") from None


class FaceDetector:
    """Haar face detection returning boxes in the training convention."""

    def __init__(self, rule_path: str | os.PathLike | None = RULE_PATH,
                 settings: HaarSettings | None = None, rule: BoxRule | None = None):
        """`rule_path=None` with `rule`/`settings` given builds one without a file (fitting)."""
        if rule_path is not None:
            self.rule, self.settings, self.fit_stats = load_rule(rule_path)
        else:
            self.rule, self.settings, self.fit_stats = rule or IDENTITY, settings or HaarSettings(), {}
        xml = Path(cv2.data.haarcascades) / self.settings.cascade
        self.classifier = cv2.CascadeClassifier(str(xml))
        if self.classifier.empty():
            raise FileNotFoundError(f"cannot load the Haar cascade {xml}")

    def raw(self, gray: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> list[Box]:
        """The detector's own boxes in `gray`'s pixels, searched on a copy at most `max_side`
        pixels on its longer side."""
        h, w = gray.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        small = gray
        if scale < 1.0:
            small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        # A rectangle's x is its left edge + 0.5 in box.py's convention (pixel centres at
        # integers), so edges scale back as plain multiples.
        kx, ky = w / small.shape[1], h / small.shape[0]
        s = self.settings
        found = self.classifier.detectMultiScale(small, scaleFactor=s.scale_factor,
                                                 minNeighbors=s.min_neighbors,
                                                 minSize=(s.min_size, s.min_size))
        return [Box(x * kx, (x + bw) * kx, y * ky, (y + bh) * ky)
                for x, y, bw, bh in (map(float, r) for r in found)]

    def detect(self, gray: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> list[Box]:
        """Face boxes in the training convention, left to right."""
        return sorted((self.rule.apply(b) for b in self.raw(gray, max_side)),
                      key=lambda b: (b.left, b.top))


def model_folder(arg: str | os.PathLike | None = None) -> Path:
    """The cascade's model folder: the argument, else $DEEP_LANDMARK_MODEL, else the default."""
    from common.cascade import default_model
    chosen = arg or os.environ.get(MODEL_ENV)
    return Path(chosen).expanduser().resolve() if chosen else default_model()


def load_pipeline(model: str | os.PathLike | None = None, rule_path: str | os.PathLike = RULE_PATH):
    """(cascade, detector) for find_landmarks; ModelMissing / RuleMissing say what to do."""
    from common.cascade import Cascade
    return Cascade(model_folder(model)), FaceDetector(rule_path)


# --- image -> five points -------------------------------------------------------------------
@dataclass(frozen=True)
class Face:
    box: Box
    points: np.ndarray  # (5, 2) image pixels, order LE RE N LM RM

    def as_dict(self, ndigits: int = 2) -> dict:
        """JSON form shared by `predict --json` and the web API."""
        b = self.box
        return {
            "box": {k: round(float(v), ndigits) for k, v in
                    zip(("left", "right", "top", "bottom"), b.as_tuple())},
            "points": {name: [round(float(x), ndigits), round(float(y), ndigits)]
                       for name, (x, y) in zip(POINTS, self.points)},
        }

    def scaled(self, fx: float, fy: float | None = None) -> "Face":
        """The same face in an image fx times as wide and fy times as high."""
        fy = fx if fy is None else fy
        return Face(self.box.scaled(fx, fy), scale_points(self.points, fx, fy))


def find_landmarks(image: np.ndarray, cascade, detector: FaceDetector,
                   max_side: int = DETECT_MAX_SIDE) -> list[Face]:
    """Every face in `image` (gray, BGR or BGRA) with its five points, left to right.

    Detection runs on a copy shrunk to `max_side`; the cascade sees the image itself."""
    gray = to_gray(image)
    boxes = detector.detect(gray, max_side)
    if not boxes:
        return []
    points = cascade.predict(gray, boxes)
    return [Face(b, p) for b, p in zip(boxes, points)]


# --- fitting the rule -----------------------------------------------------------------------
def match_detections(detector: FaceDetector, samples, desc: str, progress: bool = True):
    """(raw detector box or None, true box) per sample: the detection with highest IoU, kept
    when the IoU is above MATCH_IOU."""
    from tqdm import tqdm
    return [(best_match(detector, s.load_gray(), s.box), s.box)
            for s in tqdm(samples, desc=desc, unit="face", disable=not progress, dynamic_ncols=True,
                          mininterval=1.0)]


def best_match(detector: FaceDetector, gray: np.ndarray, true_box: Box) -> Box | None:
    """The raw detection overlapping `true_box` most, if its IoU is above MATCH_IOU."""
    best = max(detector.raw(gray), key=lambda b: b.iou(true_box), default=None)
    return best if best is not None and best.iou(true_box) > MATCH_IOU else None


def offsets(pairs) -> np.ndarray:
    """(N, 4) per matched pair: dx, dy, sx, sy that map the detection exactly onto the truth."""
    rows = []
    for det, true in pairs:
        if det is None:
            continue
        (dcx, dcy), (tcx, tcy) = det.center, true.center
        rows.append(((tcx - dcx) / det.width, (tcy - dcy) / det.height,
                     true.width / det.width, true.height / det.height))
    return np.array(rows).reshape(-1, 4)


def mean_iou(pairs, rule: BoxRule) -> float:
    ious = [rule.apply(det).iou(true) for det, true in pairs if det is not None]
    return float(np.mean(ious)) if ious else float("nan")


def pair_stats(pairs, rule: BoxRule) -> dict:
    matched = [(d, t) for d, t in pairs if d is not None]
    after = np.array([rule.apply(d).iou(t) for d, t in matched])
    return {
        "faces": len(pairs),
        "matched": len(matched),
        "match_rate": round(len(matched) / max(len(pairs), 1), 4),
        "mean_iou_before": round(mean_iou(matched, IDENTITY), 4),
        "mean_iou_after": round(float(after.mean()) if len(after) else float("nan"), 4),
        "iou_after_above_0.7": round(float((after > 0.7).mean()) if len(after) else 0.0, 4),
    }


def _iou_of(params: np.ndarray, det: np.ndarray, true: np.ndarray) -> float:
    """Mean IoU of rule `params` (dx, dy, sx, sy) over detections (N, 4: cx cy w h) and true
    boxes (N, 4: left right top bottom); vectorised for the search below."""
    dx, dy, sx, sy = params
    cx, cy = det[:, 0] + dx * det[:, 2], det[:, 1] + dy * det[:, 3]
    hw, hh = sx * det[:, 2] / 2, sy * det[:, 3] / 2
    iw = np.minimum(cx + hw, true[:, 1]) - np.maximum(cx - hw, true[:, 0])
    ih = np.minimum(cy + hh, true[:, 3]) - np.maximum(cy - hh, true[:, 2])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = 4 * hw * hh + (true[:, 1] - true[:, 0]) * (true[:, 3] - true[:, 2]) - inter
    return float(np.mean(inter / union))


def max_iou_rule(pairs, start: BoxRule) -> BoxRule:
    """Coordinate search from `start` for the rule with the highest mean IoU."""
    matched = [(d, t) for d, t in pairs if d is not None]
    det = np.array([(*d.center, d.width, d.height) for d, _ in matched])
    true = np.array([t.as_tuple() for _, t in matched])
    best = np.array(list(asdict(start).values()), dtype=np.float64)
    score = _iou_of(best, det, true)
    for step in (0.02, 0.005, 0.001):
        improved = True
        while improved:
            improved = False
            for i in range(4):
                for sign in (-1, 1):
                    trial = best.copy()
                    trial[i] += sign * step
                    s = _iou_of(trial, det, true)
                    if s > score + 1e-9:
                        best, score, improved = trial, s, True
    return BoxRule(*map(float, best))


def fit_rule(pairs) -> tuple[BoxRule, dict]:
    """The candidate with the best mean IoU on the pairs: the median or the mean (the
    least-squares fit of each coefficient) of the exact per-face offsets, or a direct search
    for the highest mean IoU started from the median."""
    rows = offsets(pairs)
    if len(rows) == 0:
        raise ValueError("no detection matched a listed face; cannot fit the box rule")
    candidates = {"median": BoxRule(*map(float, np.median(rows, axis=0))),
                  "mean": BoxRule(*map(float, rows.mean(axis=0)))}
    candidates["max_iou"] = max_iou_rule(pairs, candidates["median"])
    scores = {name: mean_iou(pairs, r) for name, r in candidates.items()}
    best = max(scores, key=scores.get)
    return candidates[best], {"method": best, "candidates_mean_iou": {k: round(v, 4) for k, v in scores.items()}}


def spread(samples, n: int | None):
    """`n` samples evenly spread over the list (lists are ordered by source)."""
    if n is None or n >= len(samples):
        return samples
    idx = np.linspace(0, len(samples) - 1, n).round().astype(int)
    return [samples[i] for i in idx]


def fit(data: str | None, limit: int | None, test_limit: int | None, out: Path,
        settings: HaarSettings) -> dict:
    from common.listfile import read_list
    from common.paths import data_lists
    train_list, test_list = data_lists(data)
    all_train = read_list(train_list)
    train = spread(all_train, limit)
    test = spread(read_list(test_list), test_limit)
    detector = FaceDetector(None, settings)
    train_pairs = match_detections(detector, train, "detect train")
    rule, how = fit_rule(train_pairs)
    test_pairs = match_detections(detector, test, "detect test")
    result = {
        "about": "Haar detector box -> CUHK training box: centre += (dx*w, dy*h), "
                 "size = (sx*w, sy*h). Made by `python -m common.detect --fit`.",
        "detector": asdict(settings),
        "rule": {k: round(v, 5) for k, v in asdict(rule).items()},
        "fit": {
            **how,
            "match_iou": MATCH_IOU,
            "train": {**pair_stats(train_pairs, rule), "list": train_list.name,
                      "subset": "all" if len(train) == len(all_train) else "evenly spread over the list"},
            "test": {**pair_stats(test_pairs, rule), "list": test_list.name},
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.detect", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", action="store_true", help="fit the box rule on the training list")
    ap.add_argument("--data", help="data set folder (default: $DEEP_LANDMARK_DATA or dataset/train/)")
    ap.add_argument("--limit", type=int, help="fit on N training faces spread over the list (default: all)")
    ap.add_argument("--test-limit", type=int, help="check on N test faces (default: all)")
    ap.add_argument("--out", type=Path, default=RULE_PATH, help=f"rule file (default: {rel(RULE_PATH)})")
    ap.add_argument("--cascade", default=HaarSettings.cascade, help="Haar cascade file in cv2.data.haarcascades")
    ap.add_argument("--min-neighbors", type=int, default=HaarSettings.min_neighbors)
    args = ap.parse_args(argv)
    if not args.fit:
        ap.print_help()
        return 2
    from common.listfile import ListFileError
    from common.paths import DataMissing
    try:
        result = fit(args.data, args.limit, args.test_limit, args.out,
                     HaarSettings(cascade=args.cascade, min_neighbors=args.min_neighbors))
    except (DataMissing, ListFileError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    r, f = result["rule"], result["fit"]
    print(f"rule ({f['method']}): dx={r['dx']:+.4f} dy={r['dy']:+.4f} sx={r['sx']:.4f} sy={r['sy']:.4f}")
    for part in ("train", "test"):
        s = f[part]
        print(f"{part}: {s['matched']}/{s['faces']} faces matched (IoU > {MATCH_IOU}), mean IoU "
              f"{s['mean_iou_before']:.3f} before -> {s['mean_iou_after']:.3f} after the rule")
    print(f"wrote {rel(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
