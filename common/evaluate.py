"""Evaluate the cascade on a list file: per point mean error (distance / box width) and failure
rate (error > 0.05), level by level.

    python -m common.evaluate --level 3                     # test list of the data set
    python -m common.evaluate --list FILE --level 1 --json out.json --model model/released
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common import plotting
from common.cascade import Cascade, ModelMissing, load_chunks
from common.console import log_to_console
from common.detectors import DEFAULT_DETECTOR, detector_names
from common.listfile import ListFileError, read_list
from common.metrics import F1_ALONE, FAILURE, face_errors, result_name, summary
from common.netfiles import MODEL_HELP
from common.nets import LEVELS, POINTS
from common.paths import DATA_ENV, RESULT_DIR, DataMissing, data_lists, rel


def table(results: dict[str, dict]) -> str:
    """Mean errors and failure rates of `results` (metrics.summary per key), in % of box width."""
    head = f"{'level':<8}" + "".join(f"{p:>8}" for p in POINTS) + f"{'mean':>8}"
    lines = []
    for title, field in (("mean error, % of box width", "mean_error"),
                         ("failure rate (error > 5%), %", "failure_rate")):
        lines += ["", title, head] if lines else [title, head]
        for key, s in results.items():
            lines.append(f"{result_name(key, level_word=False):<8}"
                         + "".join(f"{100 * s[p][field]:8.2f}" for p in POINTS) + f"{100 * s[field]:8.2f}")
    return "\n".join(lines)


def histogram(err: np.ndarray, path: Path, title: str) -> None:
    """Per-point histograms of errors `err` (N, 5), failures marked, written to `path`."""
    fig, axes = plotting.pyplot().subplots(1, len(POINTS), figsize=(15, 3), sharey=True)
    bins = np.linspace(0, 0.15, 61)
    for i, (ax, p) in enumerate(zip(axes, POINTS)):
        e = err[:, i]
        ax.hist(np.clip(e, 0, bins[-1]), bins=bins, color="tab:blue")
        ax.axvline(FAILURE, color="tab:red", ls="--", lw=1)
        ax.set_title(f"{p}: mean {100 * e.mean():.2f}%, fail {100 * (e > FAILURE).mean():.1f}%", fontsize=9)
        ax.set_xlabel("error / box width", fontsize=8)
    axes[0].set_ylabel("faces")
    fig.suptitle(title)
    plotting.save(fig, path, dpi=90)


class Evaluation(NamedTuple):
    """What evaluate_faces returns, for N faces and levels 1..L. `summaries` and `errors` are
    keyed F1_ALONE ("F1": F1 by itself, the paper's baseline), then "1" .. "L"."""
    summaries: dict[str, dict]       # metrics.summary of each key's errors
    errors: dict[str, np.ndarray]    # (N, 5) error / box width of each face and point
    faces: list                      # the N faces (common.listfile.FaceSample) in list order
    predictions: list[np.ndarray]    # one (N, 5, 2) array of points in image pixels per level


class NoFaces(ValueError):
    pass


def _detected(landmarker, part, images):
    """The faces of `part` the landmarker finds (the region whose box best matches the listed
    box), with the cascade's inputs for them: what predict and the webapp would use."""
    from common.boxrule_fit import best_match
    found, grays, boxes, back = [], [], [], []
    for face, image in zip(part, images):
        regions = landmarker.locate(image)
        i = best_match([r.box for r in regions], face.box)
        if i is None:
            continue
        g, b, m = landmarker.cascade_inputs(image, [regions[i]])
        found.append(face)
        grays += g
        boxes += b
        back += m
    return found, grays, boxes, back


def evaluate(list_path: Path, level: int, model: Path | None = None, limit: int | None = None,
             progress: bool = True, boxes: str = "list", detector: str | None = None,
             mirror: bool = True) -> Evaluation:
    """evaluate_faces on the faces of a list file (the first `limit`)."""
    return evaluate_faces(read_list(list_path, limit), level, model, progress, boxes, detector, mirror)


def evaluate_faces(listed: list, level: int, model: Path | None = None, progress: bool = True,
                   boxes: str = "list", detector: str | None = None, mirror: bool = True) -> Evaluation:
    """The cascade's levels 1..`level` (model folder `model`: common.netfiles.resolve_model) and
    F1 alone on list-file faces `listed`. `boxes="detector"` runs the cascade where
    the Landmarker (face detector `detector`, box rule, upright copies of rolled faces) puts
    it instead of on the listed boxes (faces it misses are left out); errors are still relative
    to the listed box's width. `mirror`: the cascade's test-time mirroring (F1 alone too)."""
    cascade = Cascade(model, levels=level, mirror=mirror)
    landmarker = None
    if boxes == "detector":
        from common.landmarker import Landmarker
        landmarker = Landmarker(detector=detector or DEFAULT_DETECTOR, cascade=cascade)
    from common.landmarker import to_photo
    faces, parts, f1 = [], [], []
    for part, images in load_chunks(listed, progress=progress, desc=f"cascade L1-{level}",
                                    color=landmarker is not None):
        if landmarker is None:
            grays, used, back = images, [f.box for f in part], [None] * len(part)
        else:
            part, grays, used, back = _detected(landmarker, part, images)
            if not part:
                continue
        faces += part
        parts.append([to_photo(p, back) for p in cascade.estimates(grays, used, level)])
        f1.append(to_photo(cascade.level1(grays, used, nets=["F1"]), back))
    if not faces:
        raise NoFaces("no face to evaluate" + (": the detector found none of the listed faces"
                                               if landmarker is not None else ""))
    preds = [np.concatenate([p[lv] for p in parts]) for lv in range(level)]
    errs = {F1_ALONE: face_errors(np.concatenate(f1), faces)}
    errs.update({str(lv): face_errors(pred, faces) for lv, pred in enumerate(preds, 1)})
    return Evaluation({k: summary(e) for k, e in errs.items()}, errs, faces, preds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", type=Path, help="list file (default: the data set's testImageList.txt)")
    p.add_argument("--data", help=f"data set folder (default ${DATA_ENV} or dataset/train/)")
    p.add_argument("--level", type=int, choices=LEVELS, default=LEVELS[-1], help="evaluate levels 1..LEVEL")
    p.add_argument("--model", type=Path, help=MODEL_HELP)
    p.add_argument("--limit", type=int, help="only the first N faces")
    p.add_argument("--boxes", choices=["list", "detector"], default="list",
                   help="face boxes: the list file's (default), or found by the face detector and "
                        "its box rule, as predict and the webapp do (missed faces are left out)")
    p.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR,
                   help=f"face detector for --boxes detector (default {DEFAULT_DETECTOR})")
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="no test-time mirroring (the paper's cascade; common.cascade)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--hist", type=Path, help="histogram PNG (default result/level<L>_<list>.png; with "
                                            "--boxes detector, result/level<L>_<list>_<detector>_boxes.png)")
    args = p.parse_args(argv)
    log_to_console()
    try:
        list_path = args.list or data_lists(args.data)[1]
        t0 = time.time()
        listed = read_list(list_path, args.limit)
        result = evaluate_faces(listed, args.level, args.model, boxes=args.boxes, detector=args.detector,
                                mirror=args.mirror)
    except (DataMissing, ListFileError, FileNotFoundError, ModelMissing, NoFaces, ValueError) as exc:
        sys.exit(f"error: {exc}")
    secs = time.time() - t0
    n = len(result.faces)
    found = "" if args.boxes == "list" else f" (the {args.detector} detector found {n} of {len(listed)})"
    mirrored = "test-time mirroring" if args.mirror else "no mirroring"
    print(f"{n} faces of {list_path}{found}, {args.boxes} boxes, levels 1-{args.level}, {mirrored}, {secs:.1f} s")
    print(table(result.summaries))
    stem = Path(list_path).stem.replace("ImageList", "")
    # Detector boxes get their own file: the listed boxes' histogram is a committed result.
    stem += "" if args.boxes == "list" else f"_{args.detector}_boxes"
    hist = args.hist or RESULT_DIR / f"level{args.level}_{stem}.png"
    histogram(result.errors[str(args.level)], hist, f"level {args.level} on {Path(list_path).name} ({n} faces)")
    print(f"histograms: {rel(hist)}")
    if args.json:
        results = result.summaries
        out = dict(results[str(args.level)], level=args.level, list=str(list_path), boxes=args.boxes,
                   mirror=args.mirror,
                   detector=args.detector if args.boxes == "detector" else None, levels=results)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
