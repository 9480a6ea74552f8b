"""Fits the box rule (common/boxrule.py) of a detector on the training list, offline: the
detector searches each listed photo upright, its box that best matches the listed face is paired
with the listed box, and the rule is fitted on the pairs and checked on the test list. The rule
file (model/box_rule_<detector>.json) also keeps the fit statistics, the detector's settings and
the spread of the placed boxes against the true ones (level 1's box noise, dataset/level1.py).

    python -m common.boxrule_fit --detector mtcnn [--data DIR] [--limit N] [--test-limit N]
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from common.box import Box
from common.boxrule import IDENTITY, BoxRule, PointsRule, RuleFile, rule_path
from common.detectors import Detector
from common.paths import rel

# A detection counts as the listed face when their IoU is above this.
MATCH_IOU = 0.3


def best_match(boxes: Sequence[Box], true_box: Box) -> int | None:
    """Index of the box overlapping `true_box` most, if its IoU is above MATCH_IOU."""
    if not boxes:
        return None
    ious = [b.iou(true_box) for b in boxes]
    i = int(np.argmax(ious))
    return i if ious[i] > MATCH_IOU else None


def match_detections(detector: Detector, samples, desc: str, progress: bool = True):
    """(detection or None, true box) per sample, the detector searching upright (as the
    Landmarker runs it): the detection whose box best matches the listed one."""
    import cv2
    from tqdm import tqdm

    from common.orientation import search
    pairs = []
    for s in tqdm(samples, desc=desc, unit="face", disable=not progress, dynamic_ncols=True, mininterval=1.0):
        image = cv2.imread(str(s.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {s.image_path}")
        found = search(detector, image, (0.0,))
        i = best_match([d.box for d in found], s.box)
        pairs.append((None if i is None else found[i], s.box))
    return pairs


def box_pairs(pairs):
    """(detector box or None, true box) from (detection or None, true box)."""
    return [(None if d is None else d.box, t) for d, t in pairs]


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
        "iou_after_above_0.5": round(float((after > 0.5).mean()) if len(after) else 0.0, 4),
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


RESIDUAL_KEYS = ("dx", "dy", "sx", "sy")


def residuals(rule_file: RuleFile, found) -> np.ndarray:
    """(N, 4) per matched face: the box the Landmarker places (`RuleFile.place`) against the
    true box: its centre shift in true box widths and heights (dx, dy) and its size as a
    multiple of the true size (sx, sy)."""
    rows = []
    for det, true in found:
        if det is None:
            continue
        placed, _ = rule_file.place(det)
        (pcx, pcy), (tcx, tcy) = placed.center, true.center
        rows.append(((pcx - tcx) / true.width, (pcy - tcy) / true.height,
                     placed.width / true.width, placed.height / true.height))
    return np.array(rows).reshape(-1, 4)


def residual_stats(rows: np.ndarray) -> dict:
    """Mean, standard deviation and 5th/95th percentiles of each column of `residuals`, and
    their covariance (rows and columns dx, dy, sx, sy)."""
    out = {k: {"mean": round(float(rows[:, i].mean()), 5), "std": round(float(rows[:, i].std()), 5),
               "p5": round(float(np.percentile(rows[:, i], 5)), 5),
               "p95": round(float(np.percentile(rows[:, i], 95)), 5)}
           for i, k in enumerate(RESIDUAL_KEYS)}
    out["cov"] = [[round(float(v), 7) for v in row] for row in np.cov(rows, rowvar=False, bias=True)]
    return out


def spread(samples, n: int | None):
    """`n` samples evenly spread over the list (lists are ordered by source)."""
    if n is None or n >= len(samples):
        return samples
    idx = np.linspace(0, len(samples) - 1, n).round().astype(int)
    return [samples[i] for i in idx]


def fit(detector_name: str, data: str | None, limit: int | None, test_limit: int | None,
        out: Path) -> dict:
    from common.detectors import load_detector
    from common.listfile import read_list
    from common.paths import data_lists
    train_list, test_list = data_lists(data)
    all_train = read_list(train_list)
    train = spread(all_train, limit)
    test = spread(read_list(test_list), test_limit)
    detector = load_detector(detector_name)
    train_found = match_detections(detector, train, "detect train")
    train_pairs = box_pairs(train_found)
    rule, how = fit_rule(train_pairs)
    test_found = match_detections(detector, test, "detect test")
    test_pairs = box_pairs(test_found)
    with_points = [(d, t) for d, t in train_found if d is not None and d.points is not None]
    points_rule = PointsRule.fit(*zip(*with_points)) if len(with_points) >= 50 else None
    result = {
        "about": f"{detector_name} detector box -> CUHK training box: centre += (dx*w, dy*h), "
                 "size = (sx*w, sy*h). Made by `python -m common.boxrule_fit`.",
        "detector": detector_name,
        "settings": detector.settings(),
        "rule": {k: round(v, 5) for k, v in asdict(rule).items()},
        "fit": {
            **how,
            "match_iou": MATCH_IOU,
            "train": {**pair_stats(train_pairs, rule), "list": train_list.name,
                      "subset": "all" if len(train) == len(all_train) else "evenly spread over the list"},
            "test": {**pair_stats(test_pairs, rule), "list": test_list.name},
        },
    }
    if points_rule is not None:
        ious = {part: [points_rule.apply(d.box, d.points).iou(t) for d, t in found if d is not None]
                for part, found in (("train", train_found), ("test", test_found))}
        result["points_rule"] = {
            "about": "rows: 1, x1, y1, ..., x5, y5 (the detector's points LE RE N LM RM relative to its "
                     "box); columns: left, right, top, bottom of the true box relative to it",
            "weights": [list(row) for row in points_rule.weights],
            "fit": {part: {"mean_iou": round(float(np.mean(v)), 4),
                           "iou_above_0.7": round(float(np.mean(np.array(v) > 0.7)), 4)}
                    for part, v in ious.items()},
        }
    placing = RuleFile(rule, detector_name, result["settings"], result["fit"], points_rule)
    result["residual"] = {
        "about": "the placed box (the points rule where the detection has points, else the rule, "
                 "as the Landmarker places it) against the true box: centre shift dx, dy in true box "
                 "widths/heights, size sx, sy as multiples of the true size; level 1 trains on box "
                 "noise of the training faces' spread (dataset/level1.py)",
        **{part: residual_stats(residuals(placing, found))
           for part, found in (("train", train_found), ("test", test_found))},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from common.detectors import DEFAULT_DETECTOR, WeightsMissing, detector_names
    ap = argparse.ArgumentParser(prog="python -m common.boxrule_fit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR)
    ap.add_argument("--data", help="data set folder (default: $DEEP_LANDMARK_DATA or dataset/train/)")
    ap.add_argument("--limit", type=int, help="fit on N training faces spread over the list (default: all)")
    ap.add_argument("--test-limit", type=int, help="check on N test faces (default: all)")
    ap.add_argument("--out", type=Path, help="rule file (default: model/box_rule_<detector>.json)")
    args = ap.parse_args(argv)
    out = args.out or rule_path(args.detector)
    from common.listfile import ListFileError
    from common.paths import DataMissing
    try:
        result = fit(args.detector, args.data, args.limit, args.test_limit, out)
    except (DataMissing, ListFileError, FileNotFoundError, ValueError, WeightsMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    r, f = result["rule"], result["fit"]
    print(f"rule ({f['method']}): dx={r['dx']:+.4f} dy={r['dy']:+.4f} sx={r['sx']:.4f} sy={r['sy']:.4f}")
    for part in ("train", "test"):
        s = f[part]
        points = result.get("points_rule", {}).get("fit", {}).get(part)
        print(f"{part}: {s['matched']}/{s['faces']} faces matched (IoU > {MATCH_IOU}), mean IoU "
              f"{s['mean_iou_before']:.3f} before -> {s['mean_iou_after']:.3f} after the rule"
              + (f", {points['mean_iou']:.3f} after the points rule" if points else ""))
    res = result["residual"]["train"]
    print("placed box against the true box (train): " + ", ".join(
        f"{k} {res[k]['mean']:+.4f} +- {res[k]['std']:.4f}" for k in RESIDUAL_KEYS))
    print(f"wrote {rel(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
