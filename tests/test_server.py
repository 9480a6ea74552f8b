"""The production server (./webapp/run.sh: granian in front, the model in one process per core)
over real sockets: slow clients, the size and header limits, cross-origin posts, security
headers, and every error as JSON."""
from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time

import pytest

from landmark_photos import ONE_FACE, encode, read
from tools.webapp_server import multipart

PHOTO_LIMIT = 10 * 1024 * 1024  # the default --max-upload-mb 10, in bytes


def request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post_photo(server, data: bytes, filename: str = "photo.jpg", headers: dict | None = None, **kw):
    body, ctype = multipart(data, filename, **kw)
    return request(server, "POST", "/api/landmarks", body, {"Content-Type": ctype, **(headers or {})})


def json_error(status: int, headers: dict, body: bytes) -> str:
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:200])
    return json.loads(body)["error"]


class Trickler(threading.Thread):
    """A client that sends its request a few bytes at a time (`part`: "headers" or "body") and
    notes when the server closes the connection and what it answered."""

    def __init__(self, port: int, part: str, limit: float = 30.0):
        super().__init__(daemon=True)
        self.port, self.part, self.limit = port, part, limit
        self.closed_after: float | None = None
        self.answer = b""

    def run(self):
        sock = socket.create_connection(("127.0.0.1", self.port))
        start = time.monotonic()
        try:
            head = b"POST /api/landmarks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            if self.part == "body":
                head += b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n"
            sock.sendall(head)
            while time.monotonic() - start < self.limit:
                if select.select([sock], [], [], 0.25)[0]:
                    data = sock.recv(65536)
                    if not data:
                        break
                    self.answer += data
                    continue
                sock.sendall(b"X-Slow: 1\r\n" if self.part == "headers" else b"--b\r\n")
        except OSError:  # reset by the server: cut off too
            pass
        finally:
            self.closed_after = time.monotonic() - start
            sock.close()


def test_slow_clients_are_cut_off_and_do_not_block_others(webapp_server):
    """10 clients trickling headers and 10 trickling bodies, more than the model has processes:
    normal requests are answered in under 2 s while they are all still open, and each is cut
    off after the read timeout (the body ones with a JSON 408)."""
    slow = [Trickler(webapp_server.port, part) for part in ("headers", "body") for _ in range(10)]
    start = time.monotonic()
    for t in slow:
        t.start()
    time.sleep(0.5)
    photo = encode(read(ONE_FACE))
    for _ in range(3):
        t0 = time.monotonic()
        status, _, body = post_photo(webapp_server, photo)
        took = time.monotonic() - t0
        assert status == 200 and len(json.loads(body)["faces"]) == 1, body[:300]
        assert took < 2.0, f"a normal request took {took:.1f} s beside slow clients"
    answered = time.monotonic() - start
    for t in slow:
        t.join(40)
    timeout = webapp_server.read_timeout
    for t in slow:
        assert t.closed_after is not None and t.closed_after > answered, "a slow client was cut before the normal requests ended"
        # headers: the read timeout; body: it plus one second per 64 KB declared (100 KB here).
        bound = timeout + (0 if t.part == "headers" else 100000 / 65536) + 2.0
        assert timeout - 0.5 < t.closed_after < bound, (t.part, t.closed_after)
        if t.part == "body":
            head, _, body = t.answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408") and b"application/json" in head, t.answer[:300]
            assert "too slowly" in json.loads(body)["error"]


def test_security_headers(webapp_server):
    for method, path in (("GET", "/"), ("GET", "/healthz"), ("GET", "/static/app.js"), ("GET", "/nothing")):
        status, headers, _ = request(webapp_server, method, path)
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["referrer-policy"] == "no-referrer", path
        assert headers["x-content-type-options"] == "nosniff", path


def test_cross_origin_posts_are_refused(webapp_server):
    """What another site's page would send is refused; the page's own requests and curl's
    (no Origin, no Sec-Fetch-Site) are served."""
    photo = encode(read(ONE_FACE))
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": f"http://127.0.0.1:{webapp_server.port}", "Sec-Fetch-Site": "cross-site"}):
        status, resp_headers, body = post_photo(webapp_server, photo, headers=headers)
        assert status == 403 and "cross-origin request refused" in json_error(status, resp_headers, body), headers
    for headers in ({}, {"Origin": f"http://127.0.0.1:{webapp_server.port}", "Sec-Fetch-Site": "same-origin"}):
        status, _, body = post_photo(webapp_server, photo, headers=headers)
        assert status == 200 and len(json.loads(body)["faces"]) == 1, headers


def test_one_upload_limit_for_page_and_server(webapp_server):
    """The page, /healthz and the server use one number: a photo of exactly the limit is read
    (and refused only as not an image); one byte more is a 413."""
    status, _, body = request(webapp_server, "GET", "/healthz")
    assert json.loads(body)["max_upload_bytes"] == PHOTO_LIMIT
    _, _, page = request(webapp_server, "GET", "/")
    assert f'data-max-bytes="{PHOTO_LIMIT}"'.encode() in page
    status, headers, body = post_photo(webapp_server, b"\0" * PHOTO_LIMIT, "limit.bin")
    assert status == 400 and "not an image" in json_error(status, headers, body)
    status, headers, body = post_photo(webapp_server, b"\0" * (PHOTO_LIMIT + 1), "over.bin")
    assert status == 413 and "the limit is 10 MB" in json_error(status, headers, body)


def test_server_errors_are_json(webapp_server):
    """Each refusal the server itself makes before the app, and each form mistake, is a JSON
    error that says what is wrong."""
    photo = encode(read(ONE_FACE))
    cases = {
        "long URL": (414, "URL too long", dict(method="GET", path="/" + "a" * 20000)),
        "large headers": (431, "headers too large", dict(method="GET", path="/healthz",
                                                         headers={f"X-Big-{i}": "b" * 1000 for i in range(20)})),
        # Refused from its Content-Length, before 11 MB are sent.
        "declared too large": (413, "the limit is 10 MB", dict(method="POST", path="/api/landmarks", body=b"",
                                                              headers={"Content-Length": str(11 * 1024 * 1024)})),
        "no such page": (404, "not found", dict(method="GET", path="/nothing-here")),
        "wrong method": (405, "not allowed", dict(method="GET", path="/api/landmarks")),
    }
    many_parts = "".join(f"--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n" for i in range(1500))
    cases["1500 form parts"] = (400, "too many form fields", dict(
        method="POST", path="/api/landmarks", body=(many_parts + "--b--\r\n").encode(),
        headers={"Content-Type": "multipart/form-data; boundary=b"}))
    text_image = "--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nnot a file\r\n--b--\r\n"
    cases["image as text"] = (400, "holds text, not a file", dict(
        method="POST", path="/api/landmarks", body=text_image.encode(),
        headers={"Content-Type": "multipart/form-data; boundary=b"}))
    photo_part = ("--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n").encode()
    two = photo_part + photo + b"\r\n" + photo_part + photo + b"\r\n--b--\r\n"
    cases["two files"] = (400, "one photo per request", dict(
        method="POST", path="/api/landmarks", body=two, headers={"Content-Type": "multipart/form-data; boundary=b"}))
    for name, (want, words, kw) in cases.items():
        status, headers, body = request(webapp_server, kw["method"], kw["path"], kw.get("body"), kw.get("headers"))
        assert status == want, (name, status, body[:200])
        assert words in json_error(status, headers, body), (name, body[:200])


def test_what_granian_refuses_itself_is_not_html(webapp_server):
    """Past the app's limits (over 100 header fields; a request line that is not HTTP; a
    Content-Length that is not a number) granian answers before any Python runs: a bare status
    with an empty body, never an HTML page."""
    for raw in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
                b"NOT HTTP AT ALL\r\n\r\n",
                b"POST /api/landmarks HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", webapp_server.port), timeout=10) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split()[1] in (b"400", b"431"), head
        assert body == b"" and b"content-length: 0" in head.lower(), answer[:300]
    assert request(webapp_server, "GET", "/healthz")[0] == 200
