"""Photo-to-points speed, one thread: the Landmarker (detection + cascade) against the Haar
detector alone, on the same photos in the same run, so the figures are ratios.

    .venv/bin/python benchmarks/detect_speed.py [--runs 50] [--model DIR] [--json FILE]

Photos, made from the committed sample: 640x480 with one face (about 180 px wide), and the
same photo enlarged to 4000x3000 (also timed as JPEG decoding). For each: the median over
--runs calls of Haar alone (the detector the project used before), the Landmarker with the
default rotation search, the Landmarker searching upright only (--upright), and upright only
for faces of 40 px and more (--upright --min-face 40, the fast setting). Last, on the photo at
1920x1080: the default against --min-face 24 (small faces searched whatever the photo size).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np


from common.detectors import load_detector
from common.landmarker import Landmarker
from common.paths import SAMPLE_DATA

PHOTO = "lfw_5590/Abdullah_Ahmad_Badawi_0001.jpg"


def photo_640() -> np.ndarray:
    """A 640x480 photo with one face: the sample photo at 480x480 on a blurred, stretched copy
    of itself."""
    img = cv2.imread(str(SAMPLE_DATA / PHOTO), cv2.IMREAD_COLOR)
    canvas = cv2.GaussianBlur(cv2.resize(img, (640, 480)), (0, 0), 12)
    canvas[:, 80:560] = cv2.resize(img, (480, 480), interpolation=cv2.INTER_CUBIC)
    return canvas


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up: nets are planned for the input shape on the first call
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--model", help="model folder (default: the default model)")
    ap.add_argument("--json", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)

    haar = load_detector("haar")
    full = Landmarker(args.model)
    upright = Landmarker(args.model, angles=(0,), cascade=full.cascade)
    fast = Landmarker(args.model, angles=(0,), cascade=full.cascade, min_face_everywhere=40)
    small = photo_640()
    large = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    ok, jpeg = cv2.imencode(".jpg", large, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    results = {}
    for name, image in (("640x480", small), ("4000x3000", large)):
        row = {
            "faces_found": len(full(image)),
            "haar_ms": median_ms(lambda: haar.detect(image), args.runs),
            "landmarker_ms": median_ms(lambda: full(image), args.runs),
            "landmarker_upright_ms": median_ms(lambda: upright(image), args.runs),
            "landmarker_fast_ms": median_ms(lambda: fast(image), args.runs),
            "detect_only_ms": median_ms(lambda: full.locate(image), args.runs),
        }
        if name == "4000x3000":
            row["decode_ms"] = median_ms(lambda: cv2.imdecode(jpeg, cv2.IMREAD_COLOR), max(5, args.runs // 5))
        results[name] = row
        print(f"{name}: {row['faces_found']} face(s); median of {args.runs}, one thread:")
        print(f"  Haar detector alone            {row['haar_ms']:8.1f} ms")
        print(f"  Landmarker (rotation search)   {row['landmarker_ms']:8.1f} ms  "
              f"= {row['landmarker_ms'] / row['haar_ms']:.2f} x Haar  (detection {row['detect_only_ms']:.1f} ms)")
        print(f"  Landmarker --upright           {row['landmarker_upright_ms']:8.1f} ms  "
              f"= {row['landmarker_upright_ms'] / row['haar_ms']:.2f} x Haar")
        print(f"  Landmarker --upright --min-face 40 {row['landmarker_fast_ms']:4.1f} ms  "
              f"= {row['landmarker_fast_ms'] / row['haar_ms']:.2f} x Haar")
        if "decode_ms" in row:
            print(f"  JPEG decoding                  {row['decode_ms']:8.1f} ms")
    s, b = results["640x480"], results["4000x3000"]
    ratio = (b["landmarker_ms"]) / s["landmarker_ms"]
    print(f"4000x3000 / 640x480 (Landmarker, without decoding): {ratio:.2f}x "
          f"(upright: {b['landmarker_upright_ms'] / s['landmarker_upright_ms']:.2f}x)")
    results["large_over_small"] = ratio
    # What searching small faces everywhere costs (--min-face 24 lifts the size caps).
    hd = cv2.resize(small, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    small_faces = Landmarker(args.model, cascade=full.cascade, min_face_everywhere=24)
    runs = max(5, args.runs // 3)
    results["1920x1080"] = {"landmarker_ms": median_ms(lambda: full(hd), runs),
                            "landmarker_min_face_24_ms": median_ms(lambda: small_faces(hd), runs)}
    r = results["1920x1080"]
    print(f"1920x1080, median of {runs}: Landmarker {r['landmarker_ms']:.1f} ms, with --min-face 24 "
          f"{r['landmarker_min_face_24_ms']:.1f} ms ({r['landmarker_min_face_24_ms'] / r['landmarker_ms']:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
