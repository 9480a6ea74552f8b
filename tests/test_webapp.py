"""The web app through Flask's test client: real photos, a photo without a face, and every kind
of bad upload (too large, not an image, truncated, corrupt, unsupported, decompression bomb)."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from landmark_photos import (ONE_FACE, as_box, check_face, encode, listed, mean_error, no_face,
                             read, rolled, two_faces)
from webapp.app import create_app


@pytest.fixture(scope="module")
def app():
    return create_app()


@pytest.fixture()
def client(app):
    return app.test_client()


def post(client, data: bytes | None, filename: str = "photo.jpg", field: str = "image"):
    form = {} if data is None else {field: (io.BytesIO(data), filename)}
    return client.post("/api/landmarks", data=form, content_type="multipart/form-data")


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height black pixels: a few hundred KB at most, but
    width*height bytes once decoded to 8 bits."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row * 1000) for _ in range(height // 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_health_and_page(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json["status"] == "ok" and r.json["levels"] >= 1
    assert r.json["detector"] == "blaze"
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="image-input"' in html and 'id="result-canvas"' in html and "app.js" in html
    assert client.get("/static/app.js").status_code == 200


def test_one_real_face(client):
    r = post(client, encode(read(ONE_FACE)))
    assert r.status_code == 200, r.json
    body = r.json
    assert (body["width"], body["height"]) == (250, 250)
    assert body["time_ms"]["total"] > 0
    (face,) = body["faces"]
    assert list(face["points"]) == ["LE", "RE", "N", "LM", "RM"]
    truth = listed(ONE_FACE)
    box = as_box(face["box"])
    assert box.iou(truth.box) > 0.6
    check_face(box, face["points"])
    assert mean_error(face["points"], truth.points, truth.box) < 0.12


def test_two_faces_png(client):
    img, boxes = two_faces()
    r = post(client, encode(img, ".png"), "pair.png")
    assert r.status_code == 200, r.json
    assert (r.json["width"], r.json["height"]) == (500, 250)
    faces = r.json["faces"]
    assert len(faces) >= 2
    for b in boxes:
        best = max(faces, key=lambda f: as_box(f["box"]).iou(b))
        assert as_box(best["box"]).iou(b) > 0.6
        check_face(as_box(best["box"]), best["points"])


def test_tilted_head_is_found(client):
    """A head rolled by 50 degrees (Haar found none such): found, its roll reported, its points
    where they are in the photo."""
    img, truth = rolled(ONE_FACE, -50)
    r = post(client, encode(img, ".png"), "tilted.png")
    assert r.status_code == 200, r.json
    (face,) = r.json["faces"]
    assert face["roll"] == pytest.approx(50, abs=10)
    assert mean_error(face["points"], truth, listed(ONE_FACE).box) < 0.05


def test_blank_photo_has_no_face(client):
    r = post(client, encode(np.full((300, 400, 3), 200, np.uint8), ".png"), "blank.png")
    assert r.status_code == 200 and r.json["faces"] == []


def test_photo_without_a_face(client):
    r = post(client, encode(no_face()))
    assert r.status_code == 200
    assert r.json["faces"] == [] and (r.json["width"], r.json["height"]) == (500, 120)


def test_exif_orientation_is_applied(client):
    """A phone photo stored sideways with orientation 6 (rotate 90 degrees clockwise to show):
    the points refer to the upright photo."""
    upright = cv2.cvtColor(read(ONE_FACE), cv2.COLOR_BGR2RGB)
    pad = np.zeros((250, 100, 3), np.uint8)  # make it non-square so a swap shows
    upright = np.hstack([upright, pad])
    stored = Image.fromarray(np.rot90(upright, 1).copy())  # 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    r = post(client, buf.getvalue())
    assert r.status_code == 200, r.json
    assert (r.json["width"], r.json["height"]) == (350, 250)
    (face,) = r.json["faces"]
    assert as_box(face["box"]).iou(listed(ONE_FACE).box) > 0.6
    check_face(as_box(face["box"]), face["points"])


def test_large_jpeg_is_decoded_reduced_and_mapped_back(client):
    small = post(client, encode(read(ONE_FACE))).json["faces"][0]
    big = cv2.resize(read(ONE_FACE), (4000, 4000), interpolation=cv2.INTER_CUBIC)
    r = post(client, encode(big))
    assert r.status_code == 200, r.json
    assert (r.json["width"], r.json["height"]) == (4000, 4000)
    (face,) = r.json["faces"]
    k = 4000 / 250
    expected = {p: [(x + 0.5) * k - 0.5, (y + 0.5) * k - 0.5] for p, (x, y) in small["points"].items()}
    for p, (x, y) in face["points"].items():
        # within 3% of the face width of the 250 px photo's answer, scaled up
        assert abs(x - expected[p][0]) < 0.03 * 77 * k and abs(y - expected[p][1]) < 0.03 * 77 * k, p


def test_upload_over_the_limit_is_413(client):
    r = post(client, b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024 + 10))
    assert r.status_code == 413
    assert "10 MB" in r.json["error"]


def test_upload_limit_is_configurable():
    small_app = create_app(max_upload_mb=0.5)
    img = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    data = encode(img, ".png")
    assert len(data) > 512 * 1024
    r = post(small_app.test_client(), data, "noise.png")
    assert r.status_code == 413 and "0.5 MB" in r.json["error"]


@pytest.mark.parametrize("name, data, words", [
    ("text", b"hello, this is a text file\n" * 20, "not an image"),
    ("empty", b"", "empty"),
    ("truncated jpeg", None, "truncated"),
    ("truncated png", None, "truncated"),
    ("corrupt jpeg", None, "corrupt"),
    ("header only jpeg", None, "truncated"),
    ("unsupported ppm", None, "unsupported image format PPM"),
])
def test_bad_images_are_400(client, name, data, words):
    photo = read(ONE_FACE)
    jpg, png = encode(photo), encode(photo, ".png")
    if name == "truncated jpeg":
        data = jpg[:len(jpg) // 2]
    elif name == "truncated png":
        data = png[:len(png) // 2]
    elif name == "corrupt jpeg":
        broken = bytearray(jpg)
        broken[len(jpg) // 2:len(jpg) // 2 + 300] = b"\xff" * 300
        data = bytes(broken)
    elif name == "header only jpeg":
        data = jpg[:100]
    elif name == "unsupported ppm":
        data = encode(photo, ".ppm")
    r = post(client, data, "upload.bin")
    assert r.status_code == 400, (name, r.json)
    assert r.is_json and words in r.json["error"], r.json
    # The worker keeps serving.
    ok = post(client, jpg)
    assert ok.status_code == 200 and len(ok.json["faces"]) == 1


@pytest.mark.parametrize("size, words", [(30000, "decompression bomb"), (12000, "over the limit")])
def test_decompression_bomb_is_refused_without_decoding(client, monkeypatch, size, words):
    data = png_bomb(size, size)
    assert len(data) < 200_000
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    monkeypatch.setattr(cv2, "imdecode", lambda *a: decoded.append("cv2") or None)
    r = post(client, data, "bomb.png")
    assert r.status_code == 400 and words in r.json["error"], r.json
    assert decoded == [], "the bomb was decoded"


def test_missing_field_and_wrong_method(client):
    r = post(client, encode(read(ONE_FACE)), field="photo")
    assert r.status_code == 400 and "'image'" in r.json["error"]
    r = client.get("/api/landmarks")
    assert r.status_code == 405 and "error" in r.json
    r = client.get("/nothing-here")
    assert r.status_code == 404 and "error" in r.json


def test_missing_model_answers_503(tmp_path):
    broken = create_app(model=tmp_path / "no-model")
    c = broken.test_client()
    r = c.get("/healthz")
    assert r.status_code == 503 and "lacks level 1" in r.json["error"]
    r = post(c, encode(read(ONE_FACE)))
    assert r.status_code == 503


MEASURE_DECODE = """
import sys
from webapp.upload import decode_upload

def peak_mb():  # VmHWM: this process's own peak resident memory (ru_maxrss counts the parent's)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024

data = open(sys.argv[1], "rb").read()
before = peak_mb()
decoded = decode_upload(data, 50_000_000)
print(before, peak_mb(), decoded.image.shape[1], decoded.image.shape[0], decoded.image.dtype)
"""


@pytest.mark.parametrize("kind", ["png16", "tiff_float", "png8_colour"])
def test_high_depth_uploads_decode_in_bounded_memory(tmp_path, kind):
    """Small files that decode to 49 megapixels of 16-bit, float or 8-bit colour pixels: the
    worker's peak memory stays under 400 MB (the 8-bit pixel limit's order), not the 0.9-1.2 GB
    that full-size float64 and colour copies took."""
    import subprocess
    import sys

    from common.paths import ROOT
    # Broad steps compress to little; the decoded size is what matters.
    ramp = (np.arange(7000, dtype=np.float32)[None, :] // 500 * 4000) * np.ones((7000, 1), np.float32)
    path = tmp_path / f"big.{kind}"
    if kind == "png16":
        cv2.imwrite(str(path) + ".png", ramp.astype(np.uint16))
        path = Path(str(path) + ".png")
    elif kind == "png8_colour":
        path = Path(str(path) + ".png")
        cv2.imwrite(str(path), np.dstack([(ramp // 100).astype(np.uint8)] * 3))
    else:
        Image.fromarray(ramp, mode="F").save(path, "TIFF", compression="tiff_deflate")
    del ramp
    assert path.stat().st_size < 10 * 1024 * 1024  # under the upload limit
    proc = subprocess.run([sys.executable, "-c", MEASURE_DECODE, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, peak, width, height, dtype = proc.stdout.split()
    assert (int(width), int(height)) == (1750, 1750) and dtype == "uint8"
    assert int(peak) < 400, f"peak {peak} MB (imports alone {before} MB)"


def jpeg_claiming(data: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) saying width x height."""
    at = data.find(b"\xff\xc0")
    assert at > 0
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


@pytest.mark.parametrize("name, make, status", [
    ("header claims 7000x7000", lambda d: jpeg_claiming(d, 7000, 7000), 400),
    ("header claims 260x260", lambda d: jpeg_claiming(d, 260, 260), 400),
    ("cut at 90% with an end marker", lambda d: d[:len(d) * 9 // 10] + b"\xff\xd9", 400),
    ("only the end marker missing", lambda d: d[:-2], 200),
    ("bytes after the end marker", lambda d: d + b"trailer", 200),
])
def test_jpeg_with_less_data_than_its_header_says(client, name, make, status):
    """libjpeg fills missing scan data with grey and no error: such a file is refused as
    truncated; one missing only its end marker (browsers show it) is read."""
    r = post(client, make(encode(read(ONE_FACE))))
    assert r.status_code == status, (name, r.json)
    if status == 400:
        assert "truncated" in r.json["error"], r.json
    else:
        assert len(r.json["faces"]) == 1 and (r.json["width"], r.json["height"]) == (250, 250)


def oriented(fmt: str, orientation: int) -> tuple[bytes, np.ndarray]:
    """The sample face stored turned so that EXIF orientation `orientation` shows it upright
    (on a 350x250 canvas, so a swap of width and height shows), and the upright RGB image."""
    upright = np.hstack([cv2.cvtColor(read(ONE_FACE), cv2.COLOR_BGR2RGB), np.zeros((250, 100, 3), np.uint8)])
    # The stored image is the upright one under the inverse of the orientation's transform.
    inverse = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    stored = Image.fromarray(upright)
    if orientation in inverse:
        stored = stored.transpose(inverse[orientation])
    buf = io.BytesIO()
    if fmt == "TIFF":
        stored.save(buf, "TIFF", tiffinfo={0x0112: orientation})
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored.save(buf, fmt, exif=exif, **({"quality": 95} if fmt != "PNG" else {}))
    return buf.getvalue(), upright


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "JPEG"])
@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_every_orientation_is_applied_once(client, fmt, orientation):
    """Points refer to the photo as shown. Pillow turns TIFFs by their orientation itself (the
    size it reports is already upright): turning them again swapped width and height. The
    preview the page draws is the upright photo."""
    data, upright = oriented(fmt, orientation)
    r = client.post("/api/landmarks", data={"image": (io.BytesIO(data), f"o{orientation}.{fmt.lower()}"),
                                            "preview": "1"}, content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    assert (r.json["width"], r.json["height"]) == (350, 250)
    (face,) = r.json["faces"]
    assert as_box(face["box"]).iou(listed(ONE_FACE).box) > 0.6
    check_face(as_box(face["box"]), face["points"])
    preview = r.json["preview"]
    assert (preview["width"], preview["height"]) == (350, 250)
    head, b64 = preview["src"].split(",", 1)
    assert head == "data:image/jpeg;base64"
    import base64
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=float)
    assert np.abs(shown - upright).mean() < 6, "the preview is the upright photo"


def test_faces_are_numbered_in_reading_order(client):
    """Four faces in two rows, the lower row's left face further left than the upper row's:
    the order is top row left to right, then bottom row (not by left edge alone)."""
    face = read(ONE_FACE)
    canvas = np.full((560, 620, 3), 128, np.uint8)
    spots = {"top-left": (60, 20), "top-right": (330, 40), "bottom-left": (10, 300), "bottom-right": (360, 280)}
    for x, y in spots.values():
        canvas[y:y + 250, x:x + 250] = face
    r = post(client, encode(canvas, ".png"), "four.png")
    assert r.status_code == 200, r.json
    centres = [((f["box"]["left"] + f["box"]["right"]) / 2, (f["box"]["top"] + f["box"]["bottom"]) / 2)
               for f in r.json["faces"]]
    assert len(centres) == 4
    expected = [(x + 125, y + 125) for x, y in spots.values()]
    for (cx, cy), (ex, ey) in zip(centres, expected):
        assert abs(cx - ex) < 40 and abs(cy - ey) < 40, (centres, expected)


def test_form_mistakes_say_what_is_wrong(client):
    jpg = encode(read(ONE_FACE))
    r = client.post("/api/landmarks", data={"image": [(io.BytesIO(jpg), "a.jpg"), (io.BytesIO(jpg), "b.jpg")]},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and "one photo per request (2 files" in r.json["error"]
    r = client.post("/api/landmarks", data={"image": "just text"}, content_type="multipart/form-data")
    assert r.status_code == 400 and "holds text, not a file" in r.json["error"]
    r = client.post("/api/landmarks", data={f"f{i}": "x" for i in range(1500)}, content_type="multipart/form-data")
    assert r.status_code == 400 and "too many form fields" in r.json["error"]


def test_aligned_crop_matrices_on_request(client):
    """Field align=SIZE: each face gets its aligned crop's matrix in the photo's own pixels
    (here of a photo decoded at a reduced size), which takes its points onto the template."""
    from common.align import template
    from common.rotation import transform
    assert "aligned" not in post(client, encode(read(ONE_FACE))).json["faces"][0]
    k = 2400 / 250
    big = cv2.resize(read(ONE_FACE), (2400, 2400), interpolation=cv2.INTER_CUBIC)
    for size in (112, 224):
        r = client.post("/api/landmarks", data={"image": (io.BytesIO(encode(big)), "big.jpg"), "align": str(size)},
                        content_type="multipart/form-data")
        assert r.status_code == 200, r.json
        (face,) = r.json["faces"]
        assert face["aligned"]["size"] == size
        m = np.array(face["aligned"]["matrix"])
        assert m.shape == (2, 3) and np.linalg.det(m[:, :2]) > 0
        truth = (listed(ONE_FACE).points + 0.5) * k - 0.5
        assert np.linalg.norm(transform(truth, m) - template(size), axis=1).mean() < 0.06 * size
    for bad in ("0", "abc", "100000"):
        r = client.post("/api/landmarks", data={"image": (io.BytesIO(encode(read(ONE_FACE))), "a.jpg"), "align": bad},
                        content_type="multipart/form-data")
        assert r.status_code == 400 and "aligned crop size" in r.json["error"], r.json


def test_live_frames_search_upright_only(client):
    """A camera frame (live=1) is searched upright only: for an upright face, the same face and
    points (within 1% of its width: the full search also merges the turned searches' boxes)."""
    jpg = encode(read(ONE_FACE))
    full = post(client, jpg).json
    r = client.post("/api/landmarks", data={"image": (io.BytesIO(jpg), "frame.jpg"), "live": "1"},
                    content_type="multipart/form-data")
    assert r.status_code == 200
    (a,), (b,) = full["faces"], r.json["faces"]
    width = a["box"]["right"] - a["box"]["left"]
    for p in a["points"]:
        assert np.hypot(*np.subtract(a["points"][p], b["points"][p])) < 0.01 * width, p
    assert "preview" not in r.json


@pytest.mark.slow
def test_pool_replaces_a_process_stuck_on_a_photo():
    """A model process that spends longer than the timeout on one upload ends itself; that
    request gets Busy (503) and the next one is served by the process started in its place.
    Time waiting in the queue does not count."""
    import time

    from webapp import analyse
    from webapp.pool import Busy, Pool
    pool = Pool(1, timeout=2.0)
    try:
        assert pool.call(analyse.describe)["levels"] >= 1
        t0 = time.monotonic()
        with pytest.raises(Busy, match="longer than 2 s"):
            pool.call(time.sleep, 30)
        assert time.monotonic() - t0 < 15
        assert pool.call(analyse.describe)["levels"] >= 1
        # Two uploads of 1.5 s each on one process: the second waits 1.5 s, then is served.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as clients:
            assert list(clients.map(lambda _: pool.call(time.sleep, 1.5), range(2))) == [None, None]
    finally:
        pool._pool.terminate()
