"""The cascade on worn faces: the CUHK test split as it is, and three worn copies of it, each
face first shrunk to the width a face in the wild would have (drawn log-uniformly from 40 to
400 px, as benchmarks/wild.py draws them; never enlarged) and then

    small    nothing more (the resolution lost alone)
    blurred  blurred as wild.py blurs
    worn     blurred, darkened and JPEG re-encoded as wild.py does, each at 0.5

and grown back to its own size, so the listed boxes and points hold. Mean error per level,
listed boxes, for each model given: does training on worn photos (`--wear`, docs/training.md)
help on worn faces, and what does it cost on clean ones?

    .venv/bin/python benchmarks/worn.py [--models model/released build/wear/model] [--level 3]
        [--sets clean small blurred worn] [--data DIR] [--limit N] [--out build/worn] [--json FILE]

The worn copies are written once under --out (a second run reuses them).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from benchmarks.wild import DEFAULT_DATA, read_split, wear
from common.listfile import FaceSample, format_line
from common.paths import ROOT, rel

SETS = {"small": (0.0, 0.0, 0.0), "blurred": (1.0, 0.0, 0.0), "worn": (0.5, 0.5, 0.5)}
SIZES = (40.0, 400.0)
SEED = 11


def worn_copy(image: np.ndarray, face_width: float, chance, rng: np.random.Generator) -> np.ndarray:
    """`image` with its face (`face_width` px) as a face of a drawn width would be in the wild,
    worn with `chance` (wild.wear), at the image's own size."""
    size = math.exp(rng.uniform(math.log(SIZES[0]), math.log(SIZES[1])))
    k = min(1.0, size / face_width)
    h, w = image.shape[:2]
    small = image if k == 1.0 else cv2.resize(
        image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    small, _ = wear(small, face_width * k, rng, chance)
    return small if k == 1.0 else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def make_set(name: str, faces: list[FaceSample], out: Path) -> Path:
    """The list file of the worn set `name` under `out` (made unless it is complete)."""
    folder = out / name
    listed = folder / "testImageList.txt"
    if listed.is_file() and len(listed.read_text().splitlines()) == len(faces):
        return listed
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, face in enumerate(faces):
        image = cv2.imread(str(face.image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"cannot read image {face.image_path}")
        rng = np.random.default_rng([SEED, i])
        path = folder / "images" / f"{i:05d}.png"
        cv2.imwrite(str(path), worn_copy(image, face.box.width, SETS[name], rng))
        lines.append(format_line(FaceSample(path, face.box, face.points), folder))
    listed.write_text("\n".join(lines) + "\n")   # last: a partial set is made again
    return listed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["model/released"], help="model folders (default model/released)")
    ap.add_argument("--level", type=int, choices=(1, 2, 3), default=3)
    ap.add_argument("--sets", nargs="+", choices=["clean", *SETS], default=["clean", *SETS])
    ap.add_argument("--data", help=f"CUHK data folder (default: $DEEP_LANDMARK_DATA, else {rel(DEFAULT_DATA)})")
    ap.add_argument("--limit", type=int, help="only the first N test faces")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "worn", help="where the worn sets go")
    ap.add_argument("--json", type=Path, help="write the table here too")
    args = ap.parse_args(argv)

    from common.cascade import ModelMissing
    from common.evaluate import evaluate_faces
    from common.listfile import read_list
    test_list, faces = read_split(args.data, "worn.py")
    if args.limit:
        faces = faces[:args.limit]
    folder = args.out if not args.limit else args.out / f"first{args.limit}"
    sets = {name: faces if name == "clean" else read_list(make_set(name, faces, folder)) for name in args.sets}
    rows = {}
    for model in args.models:
        rows[model] = {}
        for name, listed in sets.items():
            try:
                result = evaluate_faces(listed, args.level, ROOT / model, progress=False)
            except (ModelMissing, FileNotFoundError) as exc:
                print(f"worn.py: {model}: {' '.join(str(exc).split())}", file=sys.stderr)
                return 2
            rows[model][name] = {key: round(100 * s["mean_error"], 3) for key, s in result.summaries.items()}
    print(f"mean error, % of box width, level {args.level} (F1 alone / level 1 / ... in brackets), "
          f"{len(faces)} test faces of {rel(test_list)}")
    cells = {model: [f"{by_set[name][str(args.level)]:.2f} ({' / '.join(f'{v:.2f}' for v in by_set[name].values())})"
                     for name in sets] for model, by_set in rows.items()}
    width = 2 + max(len(c) for row in cells.values() for c in row)
    name_width = 2 + max(len(m) for m in cells)
    print(f"{'model':<{name_width}}" + "".join(f"{name:>{width}}" for name in sets))
    for model, row in cells.items():
        print(f"{model:<{name_width}}" + "".join(f"{c:>{width}}" for c in row))
    if args.json:
        args.json.write_text(json.dumps({"level": args.level, "faces": len(faces), "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
