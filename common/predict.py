"""Five facial points for every face in images or videos.

    python -m common.predict IMAGE_OR_VIDEO... [--json] [--out DIR] [--model DIR] [--detector NAME]
    python -m common.predict DIR_OR_IMAGES... --jsonl FILE [--workers N]    (photo collections)
        [--engine ray [--address ADDR]]

Faces are found by common.landmarker.Landmarker: the face detector (MTCNN by default, Haar
with --detector haar) searches the photo upright and turned (tilted heads), each box is mapped
to the training box convention by the detector's fitted rule (model/box_rule_<detector>.json),
and the cascade runs on it (on an upright copy for a tilted head). Prints each face's box, roll
and points (JSON with --json). Images are only written when --out DIR is given: the input's name in DIR,
with boxes and points drawn (videos frame by frame, as DIR/<name>.mp4).

With --jsonl FILE, folders are walked for images and one JSON line per image is appended to
FILE as it goes, on every core; re-running with the same FILE skips the images already in it
(common/collection.py). With --engine ray [--address ADDR] the same per-image function runs
on a Ray cluster instead (common/cluster.py; an optional extra, README).

Model folder: --model, else $DEEP_LANDMARK_MODEL, else the project's default model.
Exit status: 0 when at least one file was processed (with or without faces), 1 when none
could be, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import cv2

from common.draw import draw_faces
from common.landmarker import (LandmarkerUnavailable, add_landmarker_args, landmarker_from_args,
                               landmarker_options)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
# Extensions cv2.imwrite can write; other inputs are written as PNG.
WRITABLE = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


class Unreadable(Exception):
    pass


def output_path(out_dir: Path, src: Path, suffix: str, taken: set[Path]) -> Path:
    """DIR/<name><suffix>, numbered when two inputs share a name."""
    path = out_dir / f"{src.stem}{suffix}"
    n = 1
    while path in taken:
        n += 1
        path = out_dir / f"{src.stem}_{n}{suffix}"
    taken.add(path)
    return path


def do_image(path: Path, landmarker, out: Path | None) -> dict:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise Unreadable("not an image OpenCV can read")
    faces = landmarker(image)
    result = {"file": str(path), "width": image.shape[1], "height": image.shape[0],
              "faces": [f.as_dict() for f in faces]}
    if out is not None:
        cv2.imwrite(str(out), draw_faces(image, faces))
        result["written"] = str(out)
    return result


def do_video(path: Path, landmarker, out: Path | None, progress: bool) -> dict:
    from tqdm import tqdm
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise Unreadable("not a video OpenCV can read")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    frames = []
    width = height = 0
    try:
        with tqdm(total=total, desc=path.name, unit="frame", disable=not progress,
                  file=sys.stderr, dynamic_ncols=True, mininterval=1.0) as bar:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                height, width = frame.shape[:2]
                faces = landmarker(frame)
                frames.append({"frame": len(frames), "faces": [f.as_dict() for f in faces]})
                if out is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                                 (width, height))
                        if not writer.isOpened():
                            raise Unreadable(f"cannot write video {out}")
                    writer.write(draw_faces(frame, faces, labels=False))
                bar.update(1)
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if not frames:
        raise Unreadable("no frame could be read")
    result = {"file": str(path), "width": width, "height": height, "fps": fps, "frames": frames}
    if out is not None:
        result["written"] = str(out)
    return result


def describe(result: dict) -> str:
    """Plain-text lines for one processed file."""
    def faces_text(faces, indent):
        lines = []
        for i, f in enumerate(faces, 1):
            b = f["box"]
            lines.append(f"{indent}face {i}: box left={b['left']:.1f} right={b['right']:.1f} "
                         f"top={b['top']:.1f} bottom={b['bottom']:.1f} roll={f['roll']:+.0f}")
            lines.append(indent + "  " + "  ".join(f"{k} ({x:.1f}, {y:.1f})"
                                                   for k, (x, y) in f["points"].items()))
        return lines

    head = f"{result['file']} ({result['width']}x{result['height']})"
    if "frames" in result:
        n = sum(len(fr["faces"]) for fr in result["frames"])
        lines = [f"{head}: {len(result['frames'])} frames, {n} faces in all"]
        for fr in result["frames"]:
            if fr["faces"]:
                lines.append(f"  frame {fr['frame']}:")
                lines += faces_text(fr["faces"], "    ")
    elif result["faces"]:
        k = len(result["faces"])
        lines = [f"{head}: {k} face{'s' if k > 1 else ''}"] + faces_text(result["faces"], "  ")
    else:
        lines = [f"{head}: no face found"]
    if "written" in result:
        lines.append(f"  wrote {result['written']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m common.predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", metavar="IMAGE_OR_VIDEO")
    ap.add_argument("--json", action="store_true", help="print a JSON list, one entry per file")
    ap.add_argument("--out", type=Path, help="write the images/videos with faces drawn into DIR")
    ap.add_argument("--jsonl", type=Path, metavar="FILE",
                    help="photo collections: walk folders, append one JSON line per image to FILE "
                         "(images already in FILE are skipped)")
    ap.add_argument("--workers", type=int,
                    help="with --jsonl: processes, or Ray actors (default: one per core of the "
                         "machine or cluster)")
    ap.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="with --jsonl: run the images on this machine's process pool (default) or "
                         "on Ray (optional extra: scripts/setup.sh --cluster; README)")
    ap.add_argument("--address", metavar="ADDR",
                    help="with --engine ray: an existing Ray cluster ('auto' on one of its nodes, "
                         "HOST:PORT, ray://HOST:10001); default: start Ray on this machine")
    add_landmarker_args(ap)
    args = ap.parse_args(argv)
    if args.jsonl is not None and (args.json or args.out is not None):
        ap.error("--jsonl writes its own output: it does not go with --json or --out")
    if args.workers is not None and (args.jsonl is None or args.workers < 1):
        ap.error("--workers N (N >= 1) goes with --jsonl")
    if args.engine != "local" and args.jsonl is None:
        ap.error("--engine goes with --jsonl")
    if args.address is not None and args.engine != "ray":
        ap.error("--address goes with --engine ray")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        landmarker = landmarker_from_args(args)
    except LandmarkerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.jsonl is not None:
        return collect(args, landmarker)
    return predict_files(args, landmarker)


def predict_files(args: argparse.Namespace, landmarker) -> int:
    """Each named image or video: a line of text (or one JSON list), drawn copies with --out."""
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    results, taken = [], set()
    for name in args.files:
        path = Path(name)
        is_video = path.suffix.lower() in VIDEO_SUFFIXES
        out = None
        if args.out is not None:
            suffix = ".mp4" if is_video else (path.suffix.lower() if path.suffix.lower() in WRITABLE else ".png")
            out = output_path(args.out, path, suffix, taken)
        try:
            if not path.is_file():
                raise Unreadable("no such file")
            if is_video:
                result = do_video(path, landmarker, out, progress=True)
            else:
                result = do_image(path, landmarker, out)
        except Unreadable as exc:
            print(f"error: cannot read {name}: {exc}", file=sys.stderr)
            if args.json:
                results.append({"file": name, "error": str(exc)})
            continue
        results.append(result)
        if not args.json:
            print(describe(result), flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0 if any("error" not in r for r in results) else 1


def collect(args, landmarker) -> int:
    from functools import partial

    from common.cluster import EngineUnavailable, ray_results  # imports ray only when used
    from common.collection import pool_results, run
    engine = pool_results
    if args.engine == "ray":
        # The workers get the detector this machine ended up with (after any fallback).
        engine = partial(ray_results, detector=landmarker.rule_file.detector, address=args.address)
    try:
        counts = run(args.files, args.jsonl, args.workers, landmarker_options(args), engine=engine)
    except EngineUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: the images done so far are in {args.jsonl}; run the same command "
              "again to go on", file=sys.stderr)
        return 130
    print(f"{counts['images']} images, {counts['faces']} faces, {counts['unreadable']} unreadable files, "
          f"{counts['skipped']} already in {args.jsonl}", file=sys.stderr)
    return 0 if counts["images"] or counts["skipped"] else 1


if __name__ == "__main__":
    sys.exit(main())
