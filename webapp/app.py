"""The web service: one page to upload a photo and see the five points of every face, and its API.

    GET  /                 the page
    POST /api/landmarks    multipart field `image` -> JSON {width, height, faces[{box, points}],
                           time_ms, levels}; errors are JSON {error} with a 4xx/5xx status
    GET  /healthz          200 when the model is loaded, 503 otherwise

Run it with ./webapp/run.sh (gunicorn, several worker processes; never Flask's debug server).
Settings (environment, or create_app arguments):
    DEEP_LANDMARK_MODEL           model folder (default: the project's default model)
    DEEP_LANDMARK_DETECTOR        face detector (default mtcnn; haar when its weights are missing)
    DEEP_LANDMARK_MAX_UPLOAD_MB   largest upload in MB (default 10) -> 413 above it
    DEEP_LANDMARK_MAX_MEGAPIXELS  largest image in megapixels (default 50) -> 400 above it

    python -m webapp.app --check [--model DIR]   loads the model once, says what it loaded
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import threading
import time

from flask import Flask, Request, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from common.cascade import resolve_model
from common.landmarker import (LandmarkerUnavailable, add_landmarker_args, landmarker_from_args,
                               make_landmarker)
from common.paths import rel
from webapp.upload import ACCEPTED_TEXT, BadImage, decode_upload

MAX_UPLOAD_ENV = "DEEP_LANDMARK_MAX_UPLOAD_MB"
MAX_PIXELS_ENV = "DEEP_LANDMARK_MAX_MEGAPIXELS"
DEFAULT_MAX_UPLOAD_MB = 10.0
DEFAULT_MAX_MEGAPIXELS = 50.0
# The cascade runs on a copy at most this large; points are mapped back to the photo's pixels.
WORK_SIDE = 2048


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


def create_app(model: str | os.PathLike | None = None, max_upload_mb: float | None = None,
               max_megapixels: float | None = None, detector: str | None = None) -> Flask:
    """The Flask app with the model loaded once (in each worker process)."""
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # points stay in the order LE RE N LM RM
    upload_mb = _number(max_upload_mb, MAX_UPLOAD_ENV, DEFAULT_MAX_UPLOAD_MB)
    megapixels = _number(max_megapixels, MAX_PIXELS_ENV, DEFAULT_MAX_MEGAPIXELS)
    app.config.update(MAX_CONTENT_LENGTH=int(upload_mb * 1024 * 1024), MAX_PIXELS=int(megapixels * 1e6),
                      MAX_UPLOAD_MB=upload_mb)

    state = {"landmarker": None, "error": None, "model": None}
    lock = threading.Lock()  # cv2.dnn nets are not safe to run from two threads at once
    try:
        state["model"] = resolve_model(model)
        state["landmarker"] = make_landmarker(state["model"], detector, warn=app.logger.warning)
    except Exception as exc:  # the app still answers: /healthz and the API report it (503)
        state["error"] = f"model not loaded: {exc}"
        app.logger.error(state["error"])

    def error(message: str, status: int):
        return jsonify(error=message), status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            return error(f"upload too large: the limit is {upload_mb:g} MB", 413)
        return error(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("unexpected error")
        return error("internal error while processing the image", 500)

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' blob: data:; object-src 'none'")
        return resp

    @app.get("/")
    def index():
        return render_template("index.html", max_upload_mb=upload_mb, formats=ACCEPTED_TEXT,
                               max_upload_bytes=app.config["MAX_CONTENT_LENGTH"])

    @app.get("/healthz")
    def healthz():
        if state["error"]:
            return error(state["error"], 503)
        lm = state["landmarker"]
        return jsonify(status="ok", levels=lm.cascade.levels, model=rel(state["model"]),
                       detector=lm.detector.name)

    @app.post("/api/landmarks")
    def landmarks():
        if state["error"]:
            return error(state["error"], 503)
        upload = request.files.get("image")
        if upload is None:
            return error("send the photo as the multipart form field 'image'", 400)
        start = time.perf_counter()
        try:
            decoded = decode_upload(upload.read(), app.config["MAX_PIXELS"], WORK_SIDE)
        except BadImage as exc:
            return error(str(exc), 400)
        decoded_at = time.perf_counter()
        with lock:
            faces = state["landmarker"](decoded.image)
        done = time.perf_counter()
        return jsonify(
            width=decoded.width, height=decoded.height, format=decoded.format,
            faces=[f.scaled(decoded.fx, decoded.fy).as_dict() for f in faces],
            levels=state["landmarker"].cascade.levels,
            time_ms={"decode": round((decoded_at - start) * 1000, 1),
                     "landmarks": round((done - decoded_at) * 1000, 1),
                     "total": round((done - start) * 1000, 1)},
        )

    return app


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m webapp.app", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="load the model and report, then exit")
    add_landmarker_args(ap)
    args = ap.parse_args(argv)
    if not args.check:
        print("serve the app with ./webapp/run.sh (gunicorn); this command only has --check",
              file=sys.stderr)
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
