"""Cascade inference speed on the committed sample's faces (listed boxes, no detection).

    .venv/bin/python benchmarks/cascade_speed.py [--model DIR] [--seconds 10] [--faces 400]

For batch size 1 (one face per call: a web request) and 256 (many faces per net call): faces/s,
and for batch 1 the latency per face (mean, p50, p99). Each setting runs for about --seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.cascade import Cascade, resolve_model  # noqa: E402
from common.listfile import read_list  # noqa: E402
from common.paths import SAMPLE_DATA, TEST_LIST, TRAIN_LIST, rel  # noqa: E402


def run_batches(cascade: Cascade, grays, boxes, batch: int, seconds: float) -> dict:
    """Calls predict_levels on `batch` faces at a time, cycling over the faces, for `seconds`."""
    cascade.batch_size = batch
    cascade.predict_levels(grays[:batch], boxes[:batch])  # warm-up
    per_call, faces, i = [], 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        idx = [(i + k) % len(grays) for k in range(batch)]
        t0 = time.perf_counter()
        cascade.predict_levels([grays[k] for k in idx], [boxes[k] for k in idx])
        per_call.append(time.perf_counter() - t0)
        faces += batch
        i += batch
    total = time.perf_counter() - start
    ms = np.array(per_call) * 1000 / batch
    return {"batch": batch, "faces": faces, "seconds": round(total, 2),
            "faces_per_s": round(faces / total, 1),
            "ms_per_face_mean": round(float(ms.mean()), 3),
            "ms_per_face_p50": round(float(np.percentile(ms, 50)), 3),
            "ms_per_face_p99": round(float(np.percentile(ms, 99)), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder (default: $DEEP_LANDMARK_MODEL, else the default model)")
    ap.add_argument("--seconds", type=float, default=10.0, help="time per batch size")
    ap.add_argument("--faces", type=int, default=400, help="sample faces to cycle over")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--threads", type=int, default=0, help="cv2.setNumThreads (0: OpenCV's default)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    cascade = Cascade(resolve_model(args.model))
    faces = (read_list(SAMPLE_DATA / TEST_LIST) + read_list(SAMPLE_DATA / TRAIN_LIST))[:args.faces]
    grays = [f.load_gray() for f in faces]
    boxes = [f.box for f in faces]
    print(f"model {rel(cascade.model_root)}: levels 1-{cascade.levels} ({len(cascade.nets)} nets); "
          f"{len(faces)} sample faces; OpenCV threads {cv2.getNumThreads()}")
    rows = []
    for batch in args.batches:
        row = run_batches(cascade, grays, boxes, batch, args.seconds)
        rows.append(row)
        print(f"batch {batch:4d}: {row['faces_per_s']:8.1f} faces/s   per face: mean "
              f"{row['ms_per_face_mean']:.2f} ms, p50 {row['ms_per_face_p50']:.2f} ms, "
              f"p99 {row['ms_per_face_p99']:.2f} ms   ({row['faces']} faces in {row['seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps({"model": rel(cascade.model_root), "levels": cascade.levels,
                                         "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
