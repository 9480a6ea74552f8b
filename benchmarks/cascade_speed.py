"""Cascade inference speed on the committed sample's faces (listed boxes, no detection), next to
the speed of its nets alone, measured in the same run.

    .venv/bin/python benchmarks/cascade_speed.py [--model DIR] [--rounds 7] [--faces 256]

For each batch size (faces per call): the cascade's time per face (`Cascade.estimates`,
crops included) and the nets' alone (each net's forward pass at that batch on inputs of its size,
the nets in turn as the cascade runs them), in alternating rounds so that a busy machine slows both alike; medians over
--rounds. "share" is nets alone / cascade: the part of the cascade's time its nets take (1.0:
no overhead). Batch 1 runs on one thread (a web request's cascade); larger batches use OpenCV's
default thread count unless --threads is given.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np


from common import cropkernel
from common.cascade import Cascade
from common.listfile import read_list
from common.netfiles import MODEL_HELP, resolve_model
from common.paths import SAMPLE_DATA, TEST_LIST, TRAIN_LIST, rel


def cascade_seconds(cascade: Cascade, grays, boxes, batch: int, calls: int) -> float:
    """Seconds per face of estimates on `calls` batches of `batch` faces."""
    cascade.batch_size = max(batch, 1)
    start = time.perf_counter()
    for c in range(calls):
        idx = [(c * batch + k) % len(grays) for k in range(batch)]
        cascade.estimates([grays[k] for k in idx], [boxes[k] for k in idx])
    return (time.perf_counter() - start) / (calls * batch)


def nets_seconds(cascade: Cascade, batch: int, calls: int, rng) -> float:
    """Seconds per face of every loaded net's forward passes alone, at `batch` faces a call, the
    nets taken in turn as the cascade takes them (so their weights are as warm in the caches):
    two passes per net with test-time mirroring, as the cascade runs them."""
    passes = 2 if cascade.mirror else 1
    inputs = [(net, rng.standard_normal((batch, channels, h, w)).astype(np.float32))
              for net, (h, w, channels) in cascade.net_inputs_shapes().items() for _ in range(passes)]
    start = time.perf_counter()
    for _ in range(calls):
        for net, x in inputs:
            net.setInput(x)
            net.forward()
    return (time.perf_counter() - start) / (calls * batch)


def opencv_crops_seconds(cascade: Cascade, grays, boxes, batch: int, calls: int) -> float:
    """cascade_seconds with the crops cut by OpenCV instead of common/cropkernel.c."""
    cropkernel.enable(False)
    try:
        return cascade_seconds(cascade, grays, boxes, batch, calls)
    finally:
        cropkernel.enable(True)


def measure(cascade: Cascade, grays, boxes, batch: int, rounds: int, threads: int) -> dict:
    cv2.setNumThreads(threads)
    rng = np.random.default_rng(0)
    calls = max(1, 256 // batch)
    compare = cropkernel.load() is not None
    cascade_seconds(cascade, grays, boxes, batch, 1)  # warm-up: first calls plan each net
    nets_seconds(cascade, batch, 1, rng)
    casc, nets, opencv = [], [], []
    for _ in range(rounds):
        nets.append(nets_seconds(cascade, batch, calls, rng))
        casc.append(cascade_seconds(cascade, grays, boxes, batch, calls))
        if compare:
            opencv.append(opencv_crops_seconds(cascade, grays, boxes, batch, calls))
    c_ms, n_ms = 1000 * float(np.median(casc)), 1000 * float(np.median(nets))
    row = {"batch": batch, "threads": cv2.getNumThreads(), "rounds": rounds, "crop_kernel": compare,
           "cascade_ms_per_face": round(c_ms, 4), "nets_alone_ms_per_face": round(n_ms, 4),
           "cascade_faces_per_s": round(1000 / c_ms, 1), "nets_alone_faces_per_s": round(1000 / n_ms, 1),
           "share": round(n_ms / c_ms, 3)}
    if compare:
        o_ms = 1000 * float(np.median(opencv))
        row.update({"opencv_crops_ms_per_face": round(o_ms, 4), "opencv_crops_share": round(n_ms / o_ms, 3)})
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help=MODEL_HELP)
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds per batch size (median taken)")
    ap.add_argument("--faces", type=int, default=256, help="sample faces to cycle over")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    ap.add_argument("--threads", type=int, default=0,
                    help="OpenCV threads for batches above 1 (0: OpenCV's default); batch 1 uses one")
    ap.add_argument("--no-mirror", dest="mirror", action="store_false",
                    help="the cascade without test-time mirroring (half the forward passes)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    default_threads = cv2.getNumThreads()
    cascade = Cascade(resolve_model(args.model), mirror=args.mirror)
    faces = (read_list(SAMPLE_DATA / TEST_LIST) + read_list(SAMPLE_DATA / TRAIN_LIST))[:args.faces]
    grays = [f.load_gray() for f in faces]
    boxes = [f.box for f in faces]
    print(f"model {rel(cascade.model_root)}: levels 1-{cascade.levels} ({len(cascade.nets)} nets); "
          f"{len(faces)} sample faces; {'with' if args.mirror else 'without'} test-time mirroring")
    rows = []
    for batch in args.batches:
        threads = 1 if batch == 1 else (args.threads or default_threads)
        row = measure(cascade, grays, boxes, batch, args.rounds, threads)
        rows.append(row)
        print(f"batch {batch:4d}, {row['threads']} thread(s): cascade {row['cascade_ms_per_face']:.3f} ms/face "
              f"({row['cascade_faces_per_s']:.0f} faces/s); nets alone {row['nets_alone_ms_per_face']:.3f} "
              f"ms/face ({row['nets_alone_faces_per_s']:.0f} faces/s); share {row['share']:.2f}")
        if "opencv_crops_ms_per_face" in row:
            print(f"{'':27s}with OpenCV's crops instead of the C loop: cascade {row['opencv_crops_ms_per_face']:.3f} "
                  f"ms/face, share {row['opencv_crops_share']:.2f} "
                  f"({row['opencv_crops_ms_per_face'] / row['cascade_ms_per_face']:.2f}x the time)")
        else:
            print(f"{'':27s}(crops through OpenCV: common/cropkernel.c is not built or is turned off)")
    if args.json:
        args.json.write_text(json.dumps({"model": rel(cascade.model_root), "levels": cascade.levels,
                                         "mirror": cascade.mirror,
                                         "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
