"""Test-time averaging over shifted crops, a lever measured for issue 10 and not adopted: the
same 23 nets run on the listed face box moved a little (level 1) or on patches centred a
little off the previous estimate (levels 2-3), and their points averaged. Prints level-3 error
on the CUHK test split (% of box width per point LE/RE/N/LM/RM, failures) for each variant.

    .venv/bin/python benchmarks/shifted_crops.py [--data DIR] [--model DIR] [--limit N]

About a minute on the 3,466 test faces. Mirroring on (the default cascade), so the baseline is
`python -m common.evaluate --level 3`.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from common.box import Boxes
from common.cascade import Cascade
from common.listfile import read_list
from common.metrics import face_errors, summary
from common.netfiles import MODEL_HELP
from common.nets import POINTS
from common.paths import TEST_LIST, data_dir


def line(name: str, pred: np.ndarray, faces) -> str:
    s = summary(face_errors(pred, faces))
    per_point = "/".join(f"{100 * s[p]['mean_error']:.3f}" for p in POINTS)
    return f"{name:48s} {100 * s['mean_error']:.3f}%  ({per_point})  failures {100 * s['failure_rate']:.2f}%"


def moved(boxes: Boxes, dx: float, dy: float, scale: float) -> Boxes:
    """The boxes shifted by dx, dy box sizes and scaled about their centres."""
    w, h = boxes.width, boxes.height
    cx = (boxes.left + boxes.right) / 2 + dx * w
    cy = (boxes.top + boxes.bottom) / 2 + dy * h
    return Boxes(cx - scale * w / 2, cx + scale * w / 2, cy - scale * h / 2, cy + scale * h / 2)


def cross(d: float) -> list[tuple[float, float]]:
    return [(0.0, 0.0), (d, 0.0), (-d, 0.0), (0.0, d), (0.0, -d)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CUHK data folder")
    ap.add_argument("--model", help=MODEL_HELP)
    ap.add_argument("--limit", type=int, help="only the first N test faces")
    args = ap.parse_args(argv)
    faces = read_list(data_dir(args.data) / TEST_LIST, args.limit)
    grays = [f.load_gray() for f in faces]
    boxes = Boxes.of([f.box for f in faces])
    cascade = Cascade(args.model, levels=3)

    def patches(level: int, est: np.ndarray, d: float) -> np.ndarray:
        """Level `level` from estimates `est`, averaged over patches centred d box sizes off."""
        w, h = boxes.width[:, None], boxes.height[:, None]
        runs = []
        for dx, dy in cross(d) if d else [(0.0, 0.0)]:
            centred = est.copy()
            centred[..., 0] += dx * w
            centred[..., 1] += dy * h
            runs.append(cascade.patch_level(level, grays, boxes, centred))
        return np.mean(runs, axis=0)

    level1 = cascade.level1(grays, boxes)
    level3 = patches(3, patches(2, level1, 0), 0)
    print(line("level 1, as the cascade runs it", level1, faces))
    print(line("level 3, as the cascade runs it", level3, faces))
    for d, s in ((0.02, 0.0), (0.03, 0.04)):
        boxes_moved = [moved(boxes, dx, dy, 1.0) for dx, dy in cross(d)]
        boxes_moved += [moved(boxes, 0, 0, 1 + s), moved(boxes, 0, 0, 1 - s)] if s else []
        shifted = np.mean([cascade.level1(grays, b) for b in boxes_moved], axis=0)
        print(line(f"level 1 on {len(boxes_moved)} boxes (shift {d}, scale {s})", shifted, faces))
        print(line("  then levels 2-3 as usual", patches(3, patches(2, shifted, 0), 0), faces))
    for d2, d3 in ((0.01, 0.0), (0.0, 0.01), (0.01, 0.01), (0.005, 0.005)):
        level2 = patches(2, level1, d2)
        if d2 and not d3:
            print(line(f"level 2 on patches shifted {d2}", level2, faces))
        print(line(f"level 2 patches shifted {d2}, level 3 {d3}", patches(3, level2, d3), faces))
    return 0


if __name__ == "__main__":
    sys.exit(main())
