"""The server's entry point (webapp/run.sh: granian, one process, `webapp.asgi:app`).

granian reads requests without threads and cuts a client whose headers take longer than
--read-timeout. Here every request is then read whole, with a deadline and the size limit,
before the Flask app (webapp/app.py, on a2wsgi's threads) sees it; the app hands the photo to
one of the model's processes (webapp/pool.py). So a slow client costs a coroutine and a
socket, never a thread or a process that runs the model. What the app cannot see (a request
line or headers over the limits, a body that comes too slowly or is too large) is answered here,
as JSON like every other error.

Settings (environment; run.sh sets them from its options):
    DEEP_LANDMARK_PROCESSES      model processes (default: one per core)
    DEEP_LANDMARK_TIMEOUT        seconds one photo may take in a model process (default 30)
    DEEP_LANDMARK_READ_TIMEOUT   seconds for a request's headers (granian) and, plus one second
                                 per MIN_BODY_RATE bytes it declares, for its body (default 10)
"""
from __future__ import annotations

import asyncio
import json
import os

from a2wsgi import WSGIMiddleware

from webapp.app import SECURITY_HEADERS, create_app
from webapp.pool import default_processes

MAX_TARGET = 8 * 1024          # bytes of path and query -> 414 above
MAX_HEADER_BYTES = 16 * 1024   # bytes of all header names and values -> 431 above
MIN_BODY_RATE = 64 * 1024      # bytes/s a body must average once past the read timeout
APP_THREADS = 32               # requests the app may hold at once (each waits on the pool)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be positive, not {raw!r}")
    return value


async def json_error(send, status: int, message: str) -> None:
    """A JSON error that closes the connection (its body may be unread)."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WholeRequests:
    """ASGI middleware: a request reaches `app` only once its body is all here, within the
    limits and in time."""

    def __init__(self, app, max_body: int, limit_text: str, read_timeout: float):
        self.app, self.max_body, self.limit_text = app, max_body, limit_text
        self.read_timeout = read_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope["path"].encode()) + len(scope["query_string"]) > MAX_TARGET:
            return await json_error(send, 414, f"URL too long (the limit is {MAX_TARGET} bytes)")
        headers = scope["headers"]
        if sum(len(k) + len(v) for k, v in headers) > MAX_HEADER_BYTES:
            return await json_error(send, 431, f"request headers too large (the limit is "
                                               f"{MAX_HEADER_BYTES} bytes)")
        # granian has already refused a Content-Length that is not a number.
        declared = [v for k, v in headers if k == b"content-length"]
        length = int(declared[0]) if declared else None
        if length is not None and length > self.max_body:
            return await json_error(send, 413, f"upload too large: the limit is {self.limit_text}")
        deadline = self.read_timeout + (length if length is not None else self.max_body) / MIN_BODY_RATE
        body = bytearray()
        try:
            async with asyncio.timeout(deadline):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body:
                        return await json_error(send, 413, f"upload too large: the limit is "
                                                           f"{self.limit_text}")
        except TimeoutError:
            return await json_error(send, 408, f"the request body came too slowly (more than "
                                               f"{deadline:.0f} s)")
        # The app sees a plain request of known length (chunked uploads too).
        scope = dict(scope, headers=[(k, v) for k, v in headers
                                     if k not in (b"content-length", b"transfer-encoding")]
                     + [(b"content-length", str(len(body)).encode())])
        sent = False

        async def replay():
            nonlocal sent
            if sent:  # the app asks again only to wait for a disconnect
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


def make_app():
    flask_app = create_app(processes=int(_env_number("DEEP_LANDMARK_PROCESSES", default_processes())),
                           timeout=_env_number("DEEP_LANDMARK_TIMEOUT", 30.0))
    return WholeRequests(WSGIMiddleware(flask_app, workers=APP_THREADS),
                         max_body=flask_app.config["MAX_CONTENT_LENGTH"],
                         limit_text=f"{flask_app.config['MAX_UPLOAD_MB']:g} MB",
                         read_timeout=_env_number("DEEP_LANDMARK_READ_TIMEOUT", 10.0))


app = make_app()
