"""Video: faces tracked from frame to frame (common.tracker) against the photo path on every
frame, on synthetic 640x480 clips made from CUHK test faces.

    .venv/bin/python benchmarks/video.py [--faces 1] [--redetect 15] [--also-redetect 5 30]
        [--detector blaze] [--angles DEG ...] [--no-mirror] [--track-mirror on|off] [--data DIR] [--seed 0]
        [--json FILE] [--keep DIR] [--mediapipe [PYTHON]] [--mediapipe-faces 1] [--also-max-faces K]

Clips (30 frames/s; test-split faces only, pasted as in wild.py: a square region 2.2 box widths
wide through a feathered round mask, on a background tiled from face-free pieces of other test
images; every frame gets its own sensor noise, sigma 2 grey levels, and the clip is written as
MPEG-4 and decoded again):
  still   60 frames, one face, 140 px, not moving
  drift   90 frames, one face wandering over the frame (up to about 10 px a frame)
  roll    90 frames, one face rolling to +30 and -30 degrees
  scale   90 frames, one face growing from 80 to 220 px wide and shrinking again
  cross   90 frames, two faces passing each other (one a face height above the other, their
          pasted regions overlapping)
  leave  120 frames, one face sliding out on the right, gone for about 35 frames, coming back
  cut     60 frames, a cut half-way to another background and another face
`--faces K` makes each clip K times with other faces.

It runs on one core (cv2.setNumThreads(1), OpenBLAS/OpenMP one thread) and times every frame from
decoding (cv2.VideoCapture.read) to the faces. Modes: `every` (Landmarker on every frame: the
photo path, `predict VIDEO --no-track`), `track` (Tracker, redetect every --redetect frames,
raw points: `--no-smooth`), `smooth` (the same with the One Euro filter: the default), and a
`track` run for each --also-redetect value.

Reported per mode and clip: ms per frame (mean, and the median of the frames without a search),
found % (frames where a face is in the picture, all five true points at least 0.1 box widths
inside, and a returned face's region holds its eyes and nose), error (mean point distance / true
box width, %) against `every` on the same frames, jitter on `still` (std over the frames of each
point, over the true inter-ocular distance, %, mean of the five points), identity switches (a
track id given to two different faces, or a face's id changing between two frames it was found
in) and tracks per face (a face found again after it left the picture gets a new id: no
re-identification).

`--mediapipe [PYTHON]` adds MediaPipe FaceMesh in its video mode on the same clips, in the same
run, clip by clip after this project's modes (benchmarks/peers.py, in an interpreter
with mediapipe 0.10.x: by default build/mediapipe-venv, which `benchmarks/mediapipe_env.sh`
makes), timed the same way from decoding to points on one core, and each mode's time is also
given against it. `--mediapipe-faces K` is FaceMesh's max_num_faces (default 1, its own: it
then never searches again while it holds a face, and finds one face of the crossing pair).
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.peers import MEDIAPIPE_PYTHON, PeerUnavailable, check_python, mediapipe_video  # noqa: E402
from benchmarks.wild import DEFAULT_DATA, Backgrounds, holds, paste_face, read_split  # noqa: E402
from common.detectors import DEFAULT_DETECTOR, detector_names  # noqa: E402
from common.orientation import DEFAULT_ANGLES  # noqa: E402
from common.paths import DATA_ENV, rel  # noqa: E402

SIZE = (640, 480)
FPS = 30
NOISE = 2.0            # sensor noise per frame, grey levels
INSIDE = 0.1           # a face is in the picture with all true points this many box widths inside
CLIPS = ("still", "drift", "roll", "scale", "cross", "leave", "cut")


# --- clips ----------------------------------------------------------------------------------
@dataclass
class Pose:
    face: int          # which of the clip's faces (identity)
    x: float           # box centre
    y: float
    size: float        # box width
    roll: float        # degrees counter-clockwise as shown


def poses(clip: str) -> tuple[int, list[list[Pose]], list[int]]:
    """(frames, poses per frame (front face last), scene per frame)."""
    w, h = SIZE
    out: list[list[Pose]] = []
    if clip == "still":
        n = 60
        out = [[Pose(0, w / 2, h / 2, 140, 0)] for _ in range(n)]
    elif clip == "drift":
        n = 90
        out = [[Pose(0, w / 2 + 120 * math.sin(2 * math.pi * t / n), h / 2 + 50 * math.sin(4 * math.pi * t / n),
                     120, 0)] for t in range(n)]
    elif clip == "roll":
        n = 90
        out = [[Pose(0, w / 2, h / 2, 140, 30 * math.sin(2 * math.pi * t / n))] for t in range(n)]
    elif clip == "scale":
        n = 90
        out = [[Pose(0, w / 2, h / 2, 80 * (220 / 80) ** (0.5 - 0.5 * math.cos(2 * math.pi * t / n)), 0)]
               for t in range(n)]
    elif clip == "cross":
        n = 90
        out = [[Pose(0, 110 + (w - 220) * t / (n - 1), h / 2 - 65, 110, 0),
                Pose(1, w - 110 - (w - 220) * t / (n - 1), h / 2 + 65, 110, 0)] for t in range(n)]
    elif clip == "leave":
        n = 120
        # Right out (centre to w + 150 by frame 45), away until frame 80, back to the middle.
        def x(t):
            if t < 45:
                return w / 2 + (w / 2 + 150) * t / 45
            if t < 80:
                return w + 150
            return w + 150 - (w / 2 + 150) * min(1.0, (t - 80) / 30)
        out = [[Pose(0, x(t), h / 2, 120, 0)] for t in range(n)]
    elif clip == "cut":
        n = 60
        out = [[Pose(0, w / 2 - 40, h / 2, 130, 0)] if t < n // 2 else [Pose(1, w / 2, h / 2 + 10, 130, 0)]
               for t in range(n)]
        return n, out, [0 if t < n // 2 else 1 for t in range(n)]
    else:
        raise ValueError(clip)
    return n, out, [0] * n


def make_clip(clip: str, faces: list, backgrounds: Backgrounds, seed: int, path: Path) -> list[list[dict]]:
    """Writes the clip to `path` (MPEG-4); per frame the truth of each face in the picture:
    {face, points (5, 2), size}."""
    rng = np.random.default_rng(seed)
    n, frames, scenes = poses(clip)
    images = [cv2.imread(str(s.image_path), cv2.IMREAD_COLOR) for s in faces]
    bgs = [backgrounds.canvas(rng, faces[0].image_path, *SIZE) for _ in range(max(scenes) + 1)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    truth = []
    for t in range(n):
        canvas = bgs[scenes[t]].copy()
        here = []
        for pose in frames[t]:
            pts = paste_face(canvas, faces[pose.face], pose.roll, pose.size, (pose.x, pose.y),
                             images[pose.face])[0]
            margin = INSIDE * pose.size
            inside = ((pts[:, 0] >= margin) & (pts[:, 0] <= SIZE[0] - 1 - margin)
                      & (pts[:, 1] >= margin) & (pts[:, 1] <= SIZE[1] - 1 - margin)).all()
            if inside:
                here.append({"face": pose.face, "points": pts, "size": pose.size})
        noisy = canvas.astype(np.float32) + rng.normal(0, NOISE, canvas.shape).astype(np.float32)
        writer.write(np.clip(noisy + 0.5, 0, 255).astype(np.uint8))
        truth.append(here)
    writer.release()
    return truth


# --- running --------------------------------------------------------------------------------
def run_clip(path: Path, process) -> tuple[list[list], list[float], list[bool]]:
    """(faces per frame, ms per frame from decoding to faces, whether the frame was searched)."""
    cap = cv2.VideoCapture(str(path))
    out, ms, searched = [], [], []
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        faces, did_search = process(frame)
        ms.append((time.perf_counter() - t0) * 1000.0)
        out.append(faces)
        searched.append(did_search)
    cap.release()
    return out, ms, searched


def score_clip(truth: list[list[dict]], found: list[list]) -> list[dict]:
    """Per frame and true face: found, error (%), the points given and the track id."""
    recs = []
    for t, (here, faces) in enumerate(zip(truth, found)):
        for tr in here:
            best, best_err = None, None
            for f in faces:
                if holds(f, tr["points"]):
                    err = float(np.linalg.norm(np.asarray(f.points) - tr["points"], axis=1).mean() / tr["size"] * 100)
                    if best_err is None or err < best_err:
                        best, best_err = f, err
            recs.append({"frame": t, "face": tr["face"], "found": best is not None, "error": best_err,
                         "points": None if best is None else np.asarray(best.points),
                         "truth": tr["points"], "track_id": None if best is None else best.track_id})
    return recs


def identity(recs: list[dict]) -> tuple[int, float]:
    """(identity switches, tracks per face): switches are ids given to two faces and ids that
    change between two consecutive frames where the face is found."""
    switches = 0
    faces_of: dict = {}
    for r in recs:
        if r["track_id"] is not None:
            faces_of.setdefault(r["track_id"], set()).add(r["face"])
    switches += sum(len(v) - 1 for v in faces_of.values())
    by_face: dict = {}
    for r in sorted(recs, key=lambda r: (r["face"], r["frame"])):
        by_face.setdefault(r["face"], []).append(r)
    ids_per_face = []
    for rs in by_face.values():
        ids = {r["track_id"] for r in rs if r["track_id"] is not None}
        ids_per_face.append(len(ids))
        for a, b in zip(rs, rs[1:]):
            if b["frame"] == a["frame"] + 1 and a["found"] and b["found"] and a["track_id"] != b["track_id"]:
                switches += 1
    return switches, float(np.mean(ids_per_face)) if ids_per_face else 0.0


def jitter(recs: list[dict]) -> float | None:
    """Mean over the five points of each point's std over the frames (x and y together) / the
    true inter-ocular distance, %; None when a frame was missed."""
    found = [r for r in recs if r["found"]]
    if len(found) < 2 or len(found) < len(recs):
        return None
    pts = np.stack([r["points"] for r in found])
    iod = float(np.linalg.norm(found[0]["truth"][0] - found[0]["truth"][1]))
    return float(np.sqrt(pts.var(axis=0).sum(axis=1)).mean() / iod * 100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=1, help="make each clip this many times with other faces")
    ap.add_argument("--redetect", type=int, default=None, help="the tracker's search period (default: its own)")
    ap.add_argument("--also-redetect", type=int, nargs="*", default=[], metavar="N",
                    help="also run the tracker with these search periods")
    ap.add_argument("--clips", nargs="+", choices=CLIPS, default=list(CLIPS))
    ap.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR)
    ap.add_argument("--angles", type=float, nargs="+",
                    help="rotations searched (default: the detector's own: none for blaze, "
                         f"{' '.join(f'{a:g}' for a in DEFAULT_ANGLES)} for the others)")
    ap.add_argument("--no-mirror", dest="mirror", action="store_false")
    ap.add_argument("--track-mirror", choices=("on", "off"),
                    help="the tracker's mirroring on followed faces (default: its own)")
    ap.add_argument("--also-max-faces", type=int, metavar="K",
                    help="also run the tracker (smoothed) following at most K faces, without the "
                         "periodic search while it holds K (Tracker(max_faces=K), predict --max-faces)")
    ap.add_argument("--no-every", dest="every", action="store_false",
                    help="skip the every-frame run (no error ratio)")
    ap.add_argument("--data", help=f"CUHK data folder (default: ${DATA_ENV}, else {rel(DEFAULT_DATA)})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the tables here")
    ap.add_argument("--keep", type=Path, help="keep the clips (MPEG-4) in this folder")
    ap.add_argument("--mediapipe", type=Path, nargs="?", const=MEDIAPIPE_PYTHON, metavar="PYTHON",
                    help="also run MediaPipe FaceMesh's video mode with this interpreter "
                         f"(default {rel(MEDIAPIPE_PYTHON)}, made by benchmarks/mediapipe_env.sh)")
    ap.add_argument("--mediapipe-faces", type=int, default=1, metavar="K",
                    help="FaceMesh's max_num_faces (default 1, its own)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if args.also_max_faces is not None and args.also_max_faces < 1:
        ap.error("--also-max-faces must be at least 1")
    if args.mediapipe is not None:
        try:
            check_python(args.mediapipe)
        except PeerUnavailable as exc:
            ap.error(str(exc))

    from common.landmarker import Landmarker
    from common.tracker import REDETECT_EVERY, Tracker
    test_list, samples = read_split(args.data, "video.py")
    lm = Landmarker(detector=args.detector, angles=args.angles, mirror=args.mirror)
    redetect = args.redetect or REDETECT_EVERY

    def every(frame):
        return lm(frame), True

    def tracking(n, smooth, max_faces=None):
        extra = {} if args.track_mirror is None else {"mirror": args.track_mirror == "on"}
        tr = Tracker(lm, redetect_every=n, smooth=smooth, fps=FPS, max_faces=max_faces, **extra)

        def process(frame):
            faces = tr.update(frame)
            return faces, tr.searched
        return tr, process

    # (name, search period (None: no tracker), smoothing, the tracker's max_faces)
    modes = ([("every", None, False, None)] if args.every else []) + [("track", redetect, False, None),
                                                                     ("smooth", redetect, True, None)]
    modes += [(f"track N={n}", n, False, None) for n in args.also_redetect if n != redetect]
    if args.also_max_faces:
        modes.append((f"max faces {args.also_max_faces}", redetect, True, args.also_max_faces))
    if args.mediapipe is not None:
        modes.append(("mediapipe", None, False, None))
    # Faces with a box at least 60 px wide in their photo (small ones blown up to 220 px look
    # like no camera's picture), spread over the test list.
    usable = [s for s in samples if s.box.width >= 60]
    picks = [usable[int(i)] for i in np.linspace(0, len(usable) - 1, 2 * args.faces * len(args.clips) + 1)[:-1].round()]
    backgrounds = Backgrounds(samples)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="video_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{args.faces} x {len(args.clips)} clips from {rel(test_list)}, {SIZE[0]}x{SIZE[1]}; detector "
          f"{args.detector}, angles {' '.join(f'{a:g}' for a in lm.angles)}, mirror {args.mirror}; one thread; "
          f"tracker redetect every {redetect} frames", flush=True)
    results: dict = {m[0]: {} for m in modes}
    k = 0
    for rep in range(args.faces):
        for clip in args.clips:
            faces = picks[2 * k:2 * k + 2]
            k += 1
            path = folder / f"{clip}_{rep}.mp4"
            truth = make_clip(clip, faces, backgrounds, args.seed + k, path)
            for name, n, smooth, max_faces in modes:
                if name == "mediapipe":
                    found, ms = mediapipe_video(args.mediapipe, path, args.mediapipe_faces)
                    searched = [False] * len(ms)
                else:
                    process = every if n is None else tracking(n, smooth, max_faces)[1]
                    found, ms, searched = run_clip(path, process)
                recs = score_clip(truth, found)
                results[name].setdefault(clip, []).append({"recs": recs, "ms": ms, "searched": searched})
            print(f"  {clip} #{rep}: " + ", ".join(
                f"{name} {np.mean(results[name][clip][-1]['ms']):.1f} ms" for name, *_ in modes), flush=True)

    table = summarise(results, [m[0] for m in modes], peer="mediapipe" if args.mediapipe is not None else None)
    print_table(table, [m[0] for m in modes])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": {k: (str(v) if isinstance(v, Path) else v)
                                                      for k, v in vars(args).items()}, "table": table}, indent=1))
    if not args.keep:
        for p in folder.glob("*.mp4"):
            p.unlink()
        folder.rmdir()
    return 0


def summarise(results: dict, modes: list[str], peer: str | None = None) -> dict:
    table: dict = {}
    base = results.get("every")
    for name in modes:
        rows = {}
        for clip, runs in list(results[name].items()) + [("all", [r for rs in results[name].values() for r in rs])]:
            recs = [r for run in runs for r in run["recs"]]
            ms = [m for run in runs for m in run["ms"]]
            plain = [m for run in runs for m, s in zip(run["ms"], run["searched"]) if not s]
            searches = sum(s for run in runs for s in run["searched"])
            found = [r for r in recs if r["found"]]
            row = {"frames": len(ms), "ms": round(float(np.mean(ms)), 2),
                   "ms_p50_no_search": round(float(np.median(plain)), 2) if plain else None,
                   "searched_pct": round(100.0 * searches / max(len(ms), 1), 1),
                   "found_pct": round(100.0 * len(found) / max(len(recs), 1), 2),
                   "error": round(float(np.mean([r["error"] for r in found])), 3) if found else None}
            if base is not None:
                b_runs = base[clip] if clip != "all" else [r for rs in base.values() for r in rs]
                b_recs = [r for run in b_runs for r in run["recs"]]
                both = [(r["error"], b["error"]) for r, b in zip(recs, b_recs) if r["found"] and b["found"]]
                if both:
                    e, be = np.mean(both, axis=0)
                    row["error_same_frames"] = round(float(e), 3)
                    row["every_error_same_frames"] = round(float(be), 3)
                    row["error_ratio"] = round(float(e / be), 3)
                row["ms_ratio_to_every"] = round(row["ms"] / float(np.mean([m for run in b_runs for m in run["ms"]])), 3)
            if peer is not None:
                p_runs = results[peer][clip] if clip != "all" else [r for rs in results[peer].values() for r in rs]
                row["ms_ratio_to_peer"] = round(row["ms"] / float(np.mean([m for run in p_runs for m in run["ms"]])), 3)
            switches = 0
            ids = []
            for run in runs:
                s, i = identity(run["recs"])
                switches += s
                ids.append(i)
            tracked = name != "every" and name != peer
            row["id_switches"] = switches if tracked else None
            row["tracks_per_face"] = round(float(np.mean(ids)), 2) if tracked else None
            if name == peer:
                row["searched_pct"] = row["ms_p50_no_search"] = None
            if clip == "still":
                js = [jitter(run["recs"]) for run in runs]
                js = [j for j in js if j is not None]
                row["jitter_pct_iod"] = round(float(np.mean(js)), 3) if js else None
            rows[clip] = row
        table[name] = rows
    return table


def print_table(table: dict, modes: list[str]) -> None:
    def f(v, spec=".2f"):
        return "-" if v is None else format(v, spec)
    peer = any("ms_ratio_to_peer" in r for rows in table.values() for r in rows.values())
    print(f"\n{'mode':<12} {'clip':<6} {'frames':>6} {'ms':>7} {'x every':>7} " + (f"{'x mp':>6} " if peer else "")
          + f"{'ms p50*':>7} {'search%':>7} "
          f"{'found%':>7} {'err%':>6} {'vs every':>8} {'jitter%':>7} {'id sw':>5} {'ids/face':>8}")
    for name in modes:
        for clip, r in table[name].items():
            print(f"{name:<12} {clip:<6} {r['frames']:>6} {f(r['ms']):>7} {f(r.get('ms_ratio_to_every'), '.3f'):>7} "
                  + (f"{f(r.get('ms_ratio_to_peer'), '.2f'):>6} " if peer else "")
                  + f"{f(r['ms_p50_no_search']):>7} {f(r['searched_pct'], '.1f'):>7} {f(r['found_pct']):>7} "
                  f"{f(r['error']):>6} {f(r.get('error_ratio'), '.3f'):>8} {f(r.get('jitter_pct_iod'), '.3f'):>7} "
                  f"{f(r['id_switches'], 'd'):>5} {f(r['tracks_per_face']):>8}")
    print("  ms: decoding + faces, mean per frame; x every: against the every-frame run of the same clips;\n"
          + ("  x mp: against MediaPipe FaceMesh's video mode on the same clips;\n" if peer else "") +
          "  ms p50*: median of the frames without a search; vs every: error / the every-frame error on\n"
          "  the frames both found; jitter: still clip, std of each point / inter-ocular distance;\n"
          "  id sw: identity switches; ids/face: track ids per true face")


if __name__ == "__main__":
    sys.exit(main())
