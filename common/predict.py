"""Five facial points for every face in images or videos.

    python -m common.predict IMAGE_OR_VIDEO... [--json] [--out DIR] [--align SIZE] [--model DIR] [--detector NAME]
    python -m common.predict DIR_OR_IMAGES... --jsonl FILE [--workers N]    (photo collections)
        [--engine ray [--address ADDR]]

Faces are found by common.landmarker.Landmarker: the face detector (BlazeFace by default, at
every roll; MTCNN or Haar with --detector, searching the photo upright and turned), each box is mapped
to the training box convention by the detector's fitted rule (model/box_rule_<detector>.json),
and the cascade runs on it (on an upright copy for a tilted head). Prints each face's box, roll
and points (JSON with --json). Images are only written when --out DIR is given: the input's name in DIR,
with boxes and points drawn (videos frame by frame, as DIR/<name>.mp4).

Videos are tracked (common.tracker): the full search runs every few frames and when a face is
lost or its confidence drops; in between, each face's points give its box in the next frame and
only the cascade runs. Each face of a frame then carries a `track_id`, the same while the face
is followed. --no-track searches every frame as for photos (slower; no track_id).

With --jsonl FILE, folders are walked for images and one JSON line per image is appended to
FILE as it goes, on every core; re-running with the same FILE skips the images already in it
(common/collection.py). With --engine ray [--address ADDR] the same per-image function runs
on a Ray cluster instead (common/cluster.py; an optional extra, docs/architecture.md,
"Photo collections on a Ray cluster").

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

from common.align import parse_size
from common.draw import draw_faces
from common.imagejob import Unreadable, do_image
from common.landmarker import (LandmarkerUnavailable, add_landmarker_args, landmarker_from_args,
                               landmarker_options)

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
# Extensions cv2.imwrite can write; other inputs are written as PNG.
WRITABLE = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def output_path(out_dir: Path, src: Path, suffix: str, taken: set[Path]) -> Path:
    """DIR/<name><suffix>, numbered when two inputs share a name."""
    path = out_dir / f"{src.stem}{suffix}"
    n = 1
    while path in taken:
        n += 1
        path = out_dir / f"{src.stem}_{n}{suffix}"
    taken.add(path)
    return path


def do_video(path: Path, landmarker, out: Path | None, progress: bool, align: int | None = None,
             track: bool = True, smooth: bool = True, max_faces: int | None = None) -> dict:
    from tqdm import tqdm

    from common.tracker import Tracker
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise Unreadable("not a video OpenCV can read")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    find = Tracker(landmarker, fps=fps, smooth=smooth, max_faces=max_faces).update if track else landmarker
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
                faces = find(frame)
                frames.append({"frame": len(frames), "faces": [f.as_dict(align=align) for f in faces]})
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
            track = f" (track {f['track_id']})" if "track_id" in f else ""
            lines.append(f"{indent}face {i}{track}: box left={b['left']:.1f} right={b['right']:.1f} "
                         f"top={b['top']:.1f} bottom={b['bottom']:.1f} roll={round(f['roll']):+d}"
                         + (f" confidence={f['confidence']:.2f}" if "confidence" in f else ""))
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
    if result.get("crops"):
        lines.append(f"  wrote {len(result['crops'])} aligned crop{'s' if len(result['crops']) > 1 else ''}: "
                     + ", ".join(result["crops"]))
    return "\n".join(lines)


def crop_size(text: str) -> int:
    """--align's value (common.align.parse_size)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    """--max-faces's value: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m common.predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", metavar="IMAGE_OR_VIDEO")
    ap.add_argument("--json", action="store_true", help="print a JSON list, one entry per file")
    ap.add_argument("--out", type=Path, help="write the images/videos with faces drawn into DIR")
    ap.add_argument("--align", type=crop_size, metavar="SIZE",
                    help="aligned face crops, SIZE x SIZE pixels (112: ArcFace's template; other "
                         "sizes scale it): each face's JSON gets aligned {size, matrix}, the 2x3 "
                         "matrix from photo to crop pixels; with --out, each face of a photo is "
                         "written as DIR/<name>.face<i>.png, i from 1 as in the printed list. "
                         "Videos get the matrices but no crop files (one per face per frame)")
    ap.add_argument("--no-track", dest="track", action="store_false",
                    help="videos: search every frame for faces, as for photos, instead of tracking "
                         "them from frame to frame (several times slower; no track_id)")
    ap.add_argument("--no-smooth", dest="smooth", action="store_false",
                    help="videos: the tracked faces' raw points, without the One Euro filter "
                         "(less lag on fast motion, more shake on still faces)")
    ap.add_argument("--max-faces", type=positive_int, metavar="K",
                    help="videos: follow at most K faces, and while K are followed look for no "
                         "others (faster, as MediaPipe's max_num_faces; a face entering then is "
                         "not found). Default: any number, searched for every 15 frames")
    ap.add_argument("--jsonl", type=Path, metavar="FILE",
                    help="photo collections: walk folders, append one JSON line per image to FILE "
                         "(images already in FILE are skipped)")
    ap.add_argument("--workers", type=int,
                    help="with --jsonl: processes, or Ray actors (default: one per core of the "
                         "machine or cluster)")
    ap.add_argument("--engine", choices=["local", "ray"], default="local",
                    help="with --jsonl: run the images on this machine's process pool (default) or "
                         "on Ray (optional extra: scripts/setup.sh --cluster; docs/architecture.md)")
    ap.add_argument("--address", metavar="ADDR",
                    help="with --engine ray: an existing Ray cluster ('auto' on one of its nodes, "
                         "HOST:PORT, ray://HOST:10001); default: start Ray on this machine")
    add_landmarker_args(ap)
    args = ap.parse_args(argv)
    if args.jsonl is not None and (args.json or args.out is not None or args.align is not None):
        ap.error("--jsonl writes its own output: it does not go with --json, --out or --align")
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
                if out is not None and args.align is not None:
                    print(f"note: {name} is a video: its faces' matrices are in the results, but no "
                          "aligned crops are written for videos", file=sys.stderr)
                result = do_video(path, landmarker, out, progress=True, align=args.align, track=args.track,
                                  smooth=args.smooth, max_faces=args.max_faces)
            else:
                result = do_image(path, landmarker, out, args.align)
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
