"""Photo-collection throughput: `predict --jsonl` (common/collection.py) with 1 process and with
N processes on the same 640x480 photos, in the same run, so the figure is a ratio.

    .venv/bin/python benchmarks/collection_speed.py [--photos 120] [--workers 2]

The photos are the committed sample's test photos, each on a 640x480 canvas (written to a
temporary folder). Whole runs are timed, worker start-up (loading the nets) included.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.collection import run  # noqa: E402
from common.listfile import read_list  # noqa: E402
from common.paths import SAMPLE_DATA, TEST_LIST  # noqa: E402


def make_photos(folder: Path, n: int) -> None:
    faces = read_list(SAMPLE_DATA / TEST_LIST)
    for i in range(n):
        img = faces[i % len(faces)].load_color()
        canvas = cv2.GaussianBlur(cv2.resize(img, (640, 480)), (0, 0), 12)
        side = 400
        canvas[40:440, 120:520] = cv2.resize(img, (side, side), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"photo_{i:04d}.jpg"), canvas)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        make_photos(folder, args.photos)
        rates = {}
        for workers in (1, args.workers):
            out = Path(tmp) / f"out_{workers}.jsonl"
            t0 = time.perf_counter()
            counts = run([str(folder)], out, workers, {}, progress=False)
            secs = time.perf_counter() - t0
            rates[workers] = counts["images"] / secs
            print(f"{workers} process(es): {counts['images']} photos, {counts['faces']} faces in {secs:.1f} s "
                  f"= {rates[workers]:.2f} photos/s", flush=True)
    print(f"{args.workers} processes / 1 process: {rates[args.workers] / rates[1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
