"""The web service: one page to upload a photo (or use the camera) and see the five points of
every face, and its API.

    GET  /                 the page
    POST /api/landmarks    multipart field `image` -> JSON {width, height, faces[{box, points,
                           confidence, point_confidence}], time_ms, levels}; errors are JSON
                           {error} with a 4xx/5xx status. confidence: the chance that all five
                           points are within 5% of the box width (common/confidence.py).
                           Field `align=SIZE`: each face also gets aligned {size, matrix}, the
                           2x3 matrix from photo pixels to its SIZE x SIZE aligned crop
                           (common/align.py); the page cuts the crops itself
    GET  /healthz          200 with what is loaded and the upload limit, 503 without a model

Run it with ./webapp/run.sh (granian in front, webapp/asgi.py; the model runs in one process
per core, webapp/pool.py). Settings (environment, or create_app arguments):
    DEEP_LANDMARK_MODEL           model folder (default: the project's default model)
    DEEP_LANDMARK_DETECTOR        face detector (default blaze; haar when its weights are missing)
    DEEP_LANDMARK_MAX_UPLOAD_MB   largest photo in MB of 2^20 bytes (default 10) -> 413 above it
    DEEP_LANDMARK_MAX_MEGAPIXELS  largest image in megapixels (default 50) -> 400 above it

    python -m webapp.app --check [--model DIR]   loads the model once, says what it loaded
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Request, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from common.align import parse_size
from common.nets import POINTS
from common.landmarker import LandmarkerUnavailable, add_landmarker_args, landmarker_from_args
from common.paths import rel
from common.tracker import TrackerState
from webapp import analyse
from webapp.pool import Busy, Pool
from webapp.upload import ACCEPTED_TEXT, BadImage

MAX_UPLOAD_ENV = "DEEP_LANDMARK_MAX_UPLOAD_MB"
MAX_PIXELS_ENV = "DEEP_LANDMARK_MAX_MEGAPIXELS"
DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_MAX_MEGAPIXELS = 50.0
MB = 1024 * 1024
# Camera mode: the page names its camera stream (a random id) and numbers its frames; the
# server keeps each stream's tracking state (common.tracker) between frames, for at most
# CAMERA_STREAMS streams (the least recently seen is dropped first), each dropped CAMERA_TTL
# seconds after its last frame. A state is a few kilobytes.
CAMERA_STREAMS = 64
CAMERA_TTL = 30.0
CAMERA_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
# A request may exceed the photo's limit by this much: multipart framing and the small fields.
FORM_SLACK = 64 * 1024
# Form parts accepted: the photo and a few options. More is refused, not parsed.
MAX_FORM_PARTS = 8
# Longer side of the upright copy of the photo sent back for the page to draw (preview=1).
PREVIEW_SIDE = 1280
# Every answer carries these: no framing by other sites, no referrer leaks, no MIME sniffing.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}


class InMemoryRequest(Request):
    """Uploads stay in memory (they are capped at MAX_CONTENT_LENGTH): nothing is written to
    disk."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return io.BytesIO()


def _number(value, env: str, default: float) -> float:
    raw = value if value is not None else os.environ.get(env)
    if raw is None or raw == "":
        return default
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{env} must be a number, not {raw!r}") from None
    if number <= 0:
        raise ValueError(f"{env} must be positive, not {raw!r}")
    return number


def cross_site(req: Request) -> str | None:
    """Why a state-changing request comes from another site's page, or None. Browsers send
    Sec-Fetch-Site and Origin with every POST a page makes; curl and scripts send neither, so
    they need nothing extra."""
    site = req.headers.get("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        return f"cross-origin request refused (Sec-Fetch-Site: {site})"
    origin = req.headers.get("Origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != req.host.lower()):
        return f"cross-origin request refused (Origin {origin} is not this server, {req.host})"
    return None


@dataclass(frozen=True)
class Limits:
    """What one upload may be: bytes sent, and pixels once decoded."""
    upload_mb: float
    megapixels: float

    @property
    def max_bytes(self) -> int:
        return int(self.upload_mb * MB)

    @property
    def max_pixels(self) -> int:
        return int(self.megapixels * 1e6)

    @property
    def text(self) -> str:
        return f"{self.upload_mb:g} MB"


class CameraStates:
    """Each camera stream's tracking state by its id: bounded in number, expiring."""

    def __init__(self, size: int = CAMERA_STREAMS, ttl: float = CAMERA_TTL, clock=time.monotonic):
        self.size, self.ttl, self.clock = size, ttl, clock
        self._states: OrderedDict[str, tuple[float, int, TrackerState]] = OrderedDict()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._states and next(iter(self._states.values()))[0] < now - self.ttl:
            self._states.popitem(last=False)

    def get(self, camera: str) -> TrackerState:
        """The stream's state after its latest frame answered, or a new one."""
        with self._lock:
            self._expire(self.clock())
            entry = self._states.get(camera)
            return entry[2] if entry else TrackerState()

    def put(self, camera: str, frame: int, state: TrackerState) -> None:
        """Keep `state` as of the stream's `frame`, unless a later frame's is already kept
        (frames on their way at once come back in any order)."""
        with self._lock:
            now = self.clock()
            entry = self._states.pop(camera, None)
            if entry is not None and entry[1] > frame:
                state, frame = entry[2], entry[1]
            self._states[camera] = (now, frame, state)
            self._expire(now)
            while len(self._states) > self.size:
                self._states.popitem(last=False)

    def __len__(self) -> int:
        return len(self._states)


def _camera_stream(form) -> tuple[str | None, int, tuple | None]:
    """(camera id or None, frame number, or the JSON error answer) from a live request's form."""
    camera = form.get("camera")
    if camera is None:
        return None, 0, None
    if form.get("live") != "1":
        return None, 0, _error("camera goes with live=1 (camera frames)", 400)
    if not CAMERA_ID.fullmatch(camera):
        return None, 0, _error("camera must be an id of 8 to 64 letters, digits, '-' or '_'", 400)
    try:
        frame = int(form.get("frame", "0"))
    except ValueError:
        return None, 0, _error("frame must be a whole number", 400)
    return camera, frame, None


def _error(message: str, status: int):
    return jsonify(error=message), status


def _engine(app: Flask, model, detector: str | None, processes: int, timeout: float):
    """(describe, work): the model described, and one photo analysed, either in a pool of
    `processes` processes (the server) or in this process (processes=0: the test client)."""
    if processes > 0:
        pool = Pool(processes, model, detector, timeout)
        return (lambda: pool.call(analyse.describe)), (lambda *args: pool.call(analyse.analyse, *args))
    analyser = analyse.Analyser(model, detector, warn=app.logger.warning)
    lock = threading.Lock()  # cv2.dnn nets are not safe to run from two threads at once

    def work(*args):
        with lock:
            return analyser(*args)
    return analyser.describe, work


def _uploaded_photo(limits: Limits) -> tuple[bytes | None, tuple | None]:
    """The photo's bytes from the request's form, or the JSON error answer saying what is wrong."""
    files = request.files.getlist("image")
    if len(files) > 1:
        return None, _error(f"send one photo per request ({len(files)} files came as 'image')", 400)
    if not files:
        if "image" in request.form:
            return None, _error("the field 'image' holds text, not a file: send the photo as a file "
                                "(curl -F image=@photo.jpg)", 400)
        others = sorted(request.files)
        return None, _error("send the photo as the multipart form field 'image'"
                            + (f" (a file came as {others[0]!r})" if others else ""), 400)
    data = files[0].read()
    if len(data) > limits.max_bytes:
        return None, _error(f"upload too large: the limit is {limits.text}", 413)
    return data, None


def _add_error_handlers(app: Flask, limits: Limits) -> None:
    """Every error a JSON answer; security headers on every answer."""
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            if (request.content_length or 0) > app.config["MAX_CONTENT_LENGTH"]:
                return _error(f"upload too large: the limit is {limits.text}", 413)
            return _error(f"too many form fields (at most {MAX_FORM_PARTS}): send one photo as "
                          "the multipart form field 'image'", 400)
        return _error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        return _error("internal error while processing the image", 500)

    @app.after_request
    def headers(resp):
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        return resp


def create_app(model: str | os.PathLike | None = None, max_upload_mb: float | None = None,
               max_megapixels: float | None = None, detector: str | None = None,
               processes: int = 0, timeout: float = 30.0) -> Flask:
    """The Flask app. processes=0: the model is loaded and run in this process (the test
    client); N > 0: in a pool of N processes, each loading it once (the server)."""
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # points stay in the order LE RE N LM RM
    limits = Limits(_number(max_upload_mb, MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB),
                    _number(max_megapixels, MAX_PIXELS_ENV, DEFAULT_MAX_MEGAPIXELS))
    app.config.update(MAX_CONTENT_LENGTH=limits.max_bytes + FORM_SLACK, MAX_FORM_PARTS=MAX_FORM_PARTS,
                      MAX_FORM_MEMORY_SIZE=limits.max_bytes, MAX_UPLOAD_BYTES=limits.max_bytes,
                      MAX_UPLOAD_MB=limits.upload_mb, MAX_PIXELS=limits.max_pixels)
    describe, work = _engine(app, model, detector, processes, timeout)
    state = {"loaded": None, "error": None}
    try:
        state["loaded"] = describe()
    except (analyse.ModelUnavailable, Busy) as exc:
        state["error"] = str(exc)
        app.logger.error(state["error"])
    _add_error_handlers(app, limits)
    cameras = app.config["CAMERA_STATES"] = CameraStates()

    @app.get("/")
    def index():
        return render_template("index.html", max_upload_mb=limits.upload_mb, formats=ACCEPTED_TEXT,
                               max_upload_bytes=limits.max_bytes)

    @app.get("/healthz")
    def healthz():
        if state["error"]:
            return _error(state["error"], 503)
        return jsonify(status="ok", **state["loaded"], max_upload_bytes=limits.max_bytes,
                       max_upload_mb=limits.upload_mb, processes=processes or 1, points=list(POINTS))

    @app.post("/api/landmarks")
    def landmarks():
        refused = cross_site(request)
        if refused:
            return _error(refused, 403)
        if state["error"]:
            return _error(state["error"], 503)
        data, refusal = _uploaded_photo(limits)
        if refusal:
            return refusal
        align = None
        if request.form.get("align"):
            try:
                align = parse_size(request.form["align"])
            except ValueError as exc:
                return _error(f"align: {exc}", 400)
        camera, frame, refusal = _camera_stream(request.form)
        if refusal:
            return refusal
        start = time.perf_counter()
        try:
            answer = work(data, limits.max_pixels, PREVIEW_SIDE if request.form.get("preview") == "1" else 0,
                          request.form.get("live") == "1", align, cameras.get(camera) if camera else None)
        except BadImage as exc:
            return _error(str(exc), 400)
        except (analyse.ModelUnavailable, Busy) as exc:
            return _error(str(exc), 503)
        tracked = answer.pop("track_state", None)
        if camera and tracked is not None:
            cameras.put(camera, frame, tracked)
        # Time in this server, waiting for a free process included.
        answer["time_ms"]["server"] = round((time.perf_counter() - start) * 1000, 1)
        return jsonify(answer)

    return app


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m webapp.app", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="load the model and report, then exit")
    add_landmarker_args(ap)
    args = ap.parse_args(argv)
    if not args.check:
        print("serve the app with ./webapp/run.sh; this command only has --check", file=sys.stderr)
        return 2
    try:
        lm = landmarker_from_args(args)
    except LandmarkerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model {rel(lm.cascade.model_root)}: {lm.cascade.levels} level(s), {len(lm.cascade.nets)} nets; "
          f"detector {lm.detector.name}, rotations searched {', '.join(f'{a:g}' for a in lm.angles)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
