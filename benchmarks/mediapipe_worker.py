"""MediaPipe FaceMesh, run for the benchmarks' same-run baseline (benchmarks/peers.py drives it).

Runs in its own interpreter, one with `mediapipe` 0.10.x (the legacy `solutions` API ships its
face models inside the wheel; 1.x does not): `benchmarks/mediapipe_env.sh` makes one in
build/mediapipe-venv. It imports nothing from this project. Two modes:

    PY benchmarks/mediapipe_worker.py video MAX_FACES CLIP.mp4 [CLIP.mp4 ...]
        FaceMesh in video mode (it tracks), a fresh graph per clip, its models loaded before the
        clip is timed; for every frame, timed from decoding (cv2.VideoCapture.read) to
        the landmarks, one JSON line {"clip", "ms", "faces"}.
    PY benchmarks/mediapipe_worker.py serve
        FaceMesh in photo mode (static_image_mode: its detector on every call), one request per
        stdin line, {"path": a .npy BGR image, "max_faces": K}, one JSON line back per request,
        {"ms": the call's time from the BGR array to the landmarks, "faces"}. Images are kept by
        path, so timing rounds on one image read it once.

It runs on one core: the process pins itself to one CPU (FaceMesh's TFLite takes no thread
setting in this API). A face is {"points": five (x, y) read off the 468-point mesh as CUHK marks
them (each eye's centre as the mean of its contour, the nose tip, the mouth corners; image-left
eye first), "box": the mesh's bounding box (left, right, top, bottom)}. MAX_FACES is FaceMesh's
max_num_faces: with 1 (its default) the video mode stops searching while it holds a face; with
more it runs its detector on every frame until it holds that many.
"""
from __future__ import annotations

import json
import os
import sys
import time

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import cv2  # noqa: E402
import mediapipe as mp  # noqa: E402
import numpy as np  # noqa: E402

# FaceMesh indices: the subject's right eye (image left on an unmirrored photo) and left eye
# contours, the nose tip, the mouth corners (image left, image right).
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
NOSE_TIP = 1
MOUTH = (61, 291)
KEPT_IMAGES = 4


def five_points(landmarks, width: int, height: int) -> dict:
    xy = np.array([(p.x * width, p.y * height) for p in landmarks.landmark], dtype=np.float64)
    pts = [xy[list(RIGHT_EYE)].mean(axis=0), xy[list(LEFT_EYE)].mean(axis=0), xy[NOSE_TIP],
           xy[MOUTH[0]], xy[MOUTH[1]]]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return {"points": [[round(float(x), 2), round(float(y), 2)] for x, y in pts],
            "box": [round(float(v), 2) for v in (lo[0], hi[0], lo[1], hi[1])]}


def faces_of(result, width: int, height: int) -> list[dict]:
    return [five_points(f, width, height) for f in (result.multi_face_landmarks or [])]


def mesh(static: bool, max_faces: int):
    return mp.solutions.face_mesh.FaceMesh(static_image_mode=static, max_num_faces=max_faces,
                                           refine_landmarks=False, min_detection_confidence=0.5,
                                           min_tracking_confidence=0.5)


def video(max_faces: int, paths: list[str]) -> int:
    for path in paths:
        with mesh(False, max_faces) as m:
            cap = cv2.VideoCapture(path)
            if not cap.isOpened():
                print(f"cannot read {path}", file=sys.stderr)
                return 1
            # Set-up before timing, as this project's Landmarker is loaded before its frames are
            # timed: the graph loads its detector on its first call and its mesh model on the
            # first face (about 25 ms in all here). So the clip's first frame is read once
            # untimed, then a black frame loses that face, and the clip is read from its start:
            # its first frame is searched as on a fresh graph.
            ok, first = cap.read()
            if ok:
                m.process(cv2.cvtColor(first, cv2.COLOR_BGR2RGB))
                m.process(np.zeros_like(first))
            cap.release()
            cap = cv2.VideoCapture(path)
            while True:
                t0 = time.perf_counter()
                ok, frame = cap.read()
                if not ok:
                    break
                result = m.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                ms = (time.perf_counter() - t0) * 1000.0
                print(json.dumps({"clip": path, "ms": round(ms, 3),
                                  "faces": faces_of(result, frame.shape[1], frame.shape[0])}), flush=True)
            cap.release()
    return 0


def serve() -> int:
    meshes: dict = {}
    images: dict = {}
    for line in sys.stdin:
        req = json.loads(line)
        path, k = req["path"], int(req.get("max_faces", 1))
        if path not in images:
            if len(images) >= KEPT_IMAGES:
                images.pop(next(iter(images)))
            images[path] = np.load(path)
        image = images[path]
        m = meshes.get(k) or meshes.setdefault(k, mesh(True, k))
        t0 = time.perf_counter()
        result = m.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        ms = (time.perf_counter() - t0) * 1000.0
        print(json.dumps({"ms": round(ms, 3), "faces": faces_of(result, image.shape[1], image.shape[0])}),
              flush=True)
    return 0


def main(argv: list[str]) -> int:
    cv2.setNumThreads(1)
    if argv[:1] == ["video"] and len(argv) >= 3:
        return video(int(argv[1]), argv[2:])
    if argv == ["serve"]:
        return serve()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
