"""One upload's work: decode it, find the faces and their points, and say it as the API's JSON.

It runs in the processes of webapp/pool.py (the server: one per core, each loading the model
once) or, for the Flask test client and `create_app(processes=0)`, in the app's own process.
"""
from __future__ import annotations

import base64
import os
import time

import cv2

from common.landmarker import Landmarker, LandmarkerUnavailable, make_landmarker
from common.paths import rel
from common.tracker import Tracker
from webapp.upload import decode_upload

# The detector and cascade work on a copy at most this large; points are mapped back.
WORK_SIDE = 2048
PREVIEW_QUALITY = 85


class ModelUnavailable(RuntimeError):
    """The model could not be loaded in this process (HTTP 503)."""


class Analyser:
    def __init__(self, model: str | os.PathLike | None = None, detector: str | None = None,
                 warn=print):
        """Loads the model once: the full search (every rotation) for photos and an
        upright-only search, sharing the same cascade, for live camera frames. A failure is
        kept and reported by every call, not raised (a pool initializer that raises is
        restarted forever)."""
        from common.netfiles import resolve_model
        self.error = None
        try:
            self.model = resolve_model(model)
            self.full = make_landmarker(self.model, detector, warn=warn)
            self.live = Landmarker(self.model, self.full.detector.name, (0.0,), cascade=self.full.cascade)
        except (LandmarkerUnavailable, OSError, ValueError) as exc:
            self.error = f"model not loaded: {exc}"

    def describe(self) -> dict:
        """What was loaded (for /healthz); ModelUnavailable when nothing was."""
        if self.error:
            raise ModelUnavailable(self.error)
        return {"levels": self.full.cascade.levels, "model": rel(self.model),
                "detector": self.full.detector.name}

    def __call__(self, data: bytes, max_pixels: int, preview_side: int = 0, live: bool = False,
                 align: int | None = None, track=None) -> dict:
        """The API's answer for one upload; BadImage (400) or ModelUnavailable (503) otherwise.
        `live`: a camera frame, searched upright only (about 4x faster). `align`: each face
        also gets its align x align aligned crop's matrix (Face.as_dict). `track`: a camera's
        common.tracker.TrackerState from its last frame (or a new one): the faces are followed
        from it (mostly the cascade alone) instead of searched for, each with its track_id,
        and the answer's "track_state" is the state for the camera's next frame (the server
        keeps it; it is not sent to the page)."""
        if self.error:
            raise ModelUnavailable(self.error)
        start = time.perf_counter()
        decoded = decode_upload(data, max_pixels, WORK_SIDE)
        decoded_at = time.perf_counter()
        lm = self.live if live else self.full
        tracker = None if track is None else Tracker(lm, state=track)
        found = lm(decoded.image) if tracker is None else tracker.update(decoded.image)
        faces = reading_order([f.scaled(decoded.fx, decoded.fy) for f in found])
        done = time.perf_counter()
        answer = {
            "width": decoded.width, "height": decoded.height, "format": decoded.format,
            "faces": [f.as_dict(align=align) for f in faces],
            "levels": lm.cascade.levels,
            "time_ms": {"decode": round((decoded_at - start) * 1000, 1),
                        "landmarks": round((done - decoded_at) * 1000, 1),
                        "total": round((done - start) * 1000, 1)},
        }
        if preview_side:
            answer["preview"] = preview_of(decoded.image, preview_side)
        if tracker is not None:
            answer["track_state"] = tracker.state
        return answer


# A pool process's own Analyser (webapp/pool.py calls these module functions by name).
_process: Analyser | None = None


def load(model=None, detector=None) -> None:
    global _process
    cv2.setNumThreads(1)  # parallelism comes from the processes
    _process = Analyser(model, detector)


def describe() -> dict:
    return _process.describe()


def analyse(*args, **kwargs) -> dict:
    return _process(*args, **kwargs)


def reading_order(faces: list) -> list:
    """Faces as a reader meets them: rows from top to bottom, left to right within a row. A
    face joins the row above when its centre lies within that row's first face's height."""
    rows: list[list] = []
    for face in sorted(faces, key=lambda f: f.box.center[1]):
        if rows and face.box.center[1] <= rows[-1][0].box.bottom:
            rows[-1].append(face)
        else:
            rows.append([face])
    return [f for row in rows for f in sorted(row, key=lambda f: f.box.center[0])]


def preview_of(image, side: int) -> dict:
    """The decoded photo, upright and at most `side` pixels on its longer side, as a JPEG data
    URL: what the page draws (browsers cannot show TIFF, and Chromium does not turn WebP by
    its EXIF orientation)."""
    h, w = image.shape[:2]
    s = min(1.0, side / max(h, w))
    small = cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA) if s < 1 else image
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, PREVIEW_QUALITY])
    return {"width": small.shape[1], "height": small.shape[0],
            "src": "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")}
