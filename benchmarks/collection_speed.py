"""Photo-collection throughput: `predict --jsonl` (common/collection.py) with 1 process and with
N processes on the same 640x480 photos, in the same run, so the figure is a ratio.

    .venv/bin/python benchmarks/collection_speed.py [--photos 120] [--workers 2]
    .venv/bin/python benchmarks/collection_speed.py --folder tests/data/sample --ray [--upright]

The photos are the committed sample's test photos, each on a 640x480 canvas (written to a
temporary folder), or the images under --folder. Whole runs are timed, worker start-up (loading
the nets) included. --ray also times the Ray engine in local mode (as many actors as
--workers; Ray's start-up and shutdown included) in the same run, and checks its lines equal
the pool's. With --repeat N the runs take turns N times and each one's best is compared.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2


from common.collection import run
from common.landmarker import DEFAULT_DETECTOR
from common.listfile import read_list
from common.paths import SAMPLE_DATA, TEST_LIST


def make_photos(folder: Path, n: int) -> None:
    faces = read_list(SAMPLE_DATA / TEST_LIST)
    for i in range(n):
        img = faces[i % len(faces)].load_color()
        canvas = cv2.GaussianBlur(cv2.resize(img, (640, 480)), (0, 0), 12)
        side = 400
        canvas[40:440, 120:520] = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"photo_{i:04d}.jpg"), canvas)


def sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines(), key=lambda line: json.loads(line)["file"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--folder", type=Path, help="time the images under this folder instead")
    ap.add_argument("--ray", action="store_true", help="also the Ray engine, local mode")
    ap.add_argument("--upright", action="store_true", help="search upright faces only (predict --upright)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the best of each is compared")
    args = ap.parse_args(argv)
    options = {"angles": (0.0,)} if args.upright else {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "photos"
            folder.mkdir()
            make_photos(folder, args.photos)
        runs = {"1 process": (1, {}), f"{args.workers} processes": (args.workers, {})}
        if args.ray:
            from functools import partial

            from common.cluster import ray_results
            engine = partial(ray_results, detector=DEFAULT_DETECTOR)
            runs[f"ray, {args.workers} actors"] = (args.workers, {"engine": engine})
        rates, outs = {}, {}
        for round_ in range(args.repeat):  # round-robin, so load from elsewhere hits all alike
            for i, (label, (workers, engine)) in enumerate(runs.items()):
                outs[label] = Path(tmp) / f"out_{i}_{round_}.jsonl"
                t0 = time.perf_counter()
                counts = run([str(folder)], outs[label], workers, options, progress=False, **engine)
                secs = time.perf_counter() - t0
                rates[label] = max(rates.get(label, 0.0), counts["images"] / secs)
                print(f"{label}: {counts['images']} photos, {counts['faces']} faces in {secs:.1f} s "
                      f"= {counts['images'] / secs:.2f} photos/s", flush=True)
        labels = list(rates)
        same = args.ray and sorted_lines(outs[labels[1]]) == sorted_lines(outs[labels[2]])
    base = rates["1 process"]
    for label, rate in list(rates.items())[1:]:
        print(f"{label} / 1 process: {rate / base:.2f}x")
    if args.ray:
        pool, ray = labels[1:]
        print(f"{ray} / {pool}: {rates[ray] / rates[pool]:.2f}x; lines identical: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
