"""Other systems beside this project's in the benchmarks' own runs: MediaPipe FaceMesh.

MediaPipe pins its own numpy, OpenCV and protobuf, so it lives in its own virtual environment
(`benchmarks/mediapipe_env.sh` makes build/mediapipe-venv with the pinned wheel) and runs as a
subprocess (benchmarks/mediapipe_worker.py). Its faces come back as common.landmarker.Face,
which the benchmarks score as they score this project's faces.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from common.box import Box
from common.landmarker import Face
from common.paths import ROOT, rel
from common.rotation import rotation_about

MEDIAPIPE_PYTHON = ROOT / "build" / "mediapipe-venv" / "bin" / "python"
WORKER = Path(__file__).with_name("mediapipe_worker.py")
MEDIAPIPE_LABEL = "mediapipe facemesh"


class PeerUnavailable(RuntimeError):
    pass


def peer_faces(records: list[dict]) -> list[Face]:
    """The worker's faces as common.landmarker.Face, upright, their box the mesh's bounding box
    (what the benchmarks' scoring and drawings read)."""
    return [Face(Box(*f["box"]), np.asarray(f["points"], np.float64)) for f in records]


def check_python(python: Path) -> Path:
    """`python` if it exists, else PeerUnavailable saying how to make it."""
    if not Path(python).exists():
        raise PeerUnavailable(f"{rel(Path(python))} not found: run benchmarks/mediapipe_env.sh first "
                              "(or give another interpreter with mediapipe 0.10.x)")
    return Path(python)


def mediapipe_video(python: Path, clip: Path, max_faces: int = 1) -> tuple[list[list[Face]], list[float]]:
    """FaceMesh's video mode on one clip: (faces per frame, ms per frame from decoding)."""
    done = subprocess.run([str(check_python(python)), str(WORKER), "video", str(max_faces), str(clip)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"MediaPipe's video run failed ({python}):\n{done.stderr[-2000:]}")
    recs = [json.loads(line) for line in done.stdout.splitlines()]
    return [peer_faces(r["faces"]) for r in recs], [r["ms"] for r in recs]


class MediaPipePhotos:
    """FaceMesh's photo mode as a callable like a Landmarker: faces = peer(image). Its own time
    for the last call (BGR array -> landmarks, inside the worker, without passing the image
    over) is `last_ms`. One worker process for the object's life."""

    name = MEDIAPIPE_LABEL

    def __init__(self, python: Path = MEDIAPIPE_PYTHON, max_faces: int = 1):
        self.max_faces = int(max_faces)
        self.last_ms: float | None = None
        self._folder = tempfile.TemporaryDirectory(prefix="mediapipe_")
        self._proc = subprocess.Popen([str(check_python(python)), str(WORKER), "serve"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._written: dict[str, str] = {}
        atexit.register(self.close)

    def _path(self, image: np.ndarray) -> str:
        image = np.ascontiguousarray(image)
        key = hashlib.blake2b(image.data, digest_size=16).hexdigest() + "x".join(map(str, image.shape))
        if key not in self._written:
            path = str(Path(self._folder.name) / f"{key}.npy")
            np.save(path, image)
            self._written[key] = path
        return self._written[key]

    def __call__(self, image: np.ndarray) -> list[Face]:
        req = json.dumps({"path": self._path(image), "max_faces": self.max_faces})
        try:
            self._proc.stdin.write(req + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise PeerUnavailable(f"the MediaPipe worker stopped:\n{self._proc.stderr.read()[-2000:]}")
        rec = json.loads(line)
        self.last_ms = rec["ms"]
        return peer_faces(rec["faces"])

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        self._folder.cleanup()


# --- a referee for false faces --------------------------------------------------------------
# The benchmarks' backgrounds are pieces of CUHK photos, which hold people besides their listed
# face: a "false" face there may be a real one. MediaPipe, an independent system, is asked
# whether it sees a face where one of ours matches no true face.
REFEREE_SIDE, REFEREE_BOX = 256, 96   # the look: 256 px square, the face's box 96 px wide
REFEREE_FACES = 5                     # FaceMesh's max_num_faces on a look


def add_referee_argument(ap) -> None:
    """--referee [PYTHON], as the benchmarks that count false faces take it."""
    ap.add_argument("--referee", nargs="?", const=MEDIAPIPE_PYTHON, type=Path, metavar="PYTHON",
                    help="ask MediaPipe FaceMesh (this interpreter, default the one "
                         "benchmarks/mediapipe_env.sh makes) whether it sees a face where a false "
                         "face was returned: the background pieces hold real, unlabelled faces")


def open_referee(python: Path) -> MediaPipePhotos:
    """The referee's worker (PeerUnavailable when `python` is missing)."""
    return MediaPipePhotos(check_python(python), max_faces=REFEREE_FACES)


def surroundings(image: np.ndarray, face: Face) -> np.ndarray:
    """The face's surroundings turned upright, REFEREE_SIDE pixels square, its box REFEREE_BOX
    pixels wide at the centre (black beyond the photo)."""
    centre = (REFEREE_SIDE - 1) / 2.0
    m = rotation_about(face.box.center, face.roll, REFEREE_BOX / max(face.box.width, 1.0), to=(centre, centre))
    return cv2.warpAffine(image, m, (REFEREE_SIDE, REFEREE_SIDE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def sees_face(peer, image: np.ndarray, face: Face) -> bool:
    """Whether `peer` (a callable like MediaPipePhotos) finds a face whose points' centre lies
    within our face's box, on that face's upright surroundings."""
    centre = (REFEREE_SIDE - 1) / 2.0
    return any(np.abs(np.asarray(f.points).mean(axis=0) - centre).max() < REFEREE_BOX / 2
               for f in peer(surroundings(image, face)))
