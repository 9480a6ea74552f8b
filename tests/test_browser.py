"""The page in a real browser (headless Chromium driven by selenium) against the production
server (./webapp/run.sh, the `webapp_server` fixture of conftest.py): uploads, what is drawn,
the phone width, downloads, and the camera mode on Chromium's fake camera fed with a video made
from a sample face.

Needs Debian's chromium + chromium-driver: `bash scripts/setup.sh --browser`.
"""
from __future__ import annotations

import base64
import io
import json
import socket
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import OUTPUT
from landmark_photos import ONE_FACE, check_face, group, listed, no_face, read, two_faces

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = OUTPUT / "screenshots"  # small copies for webapp/README.md
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}


def get(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def chromium(profile: Path, *extra: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).is_file(), f"{path} missing: run `bash scripts/setup.sh --browser`"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,1100", f"--user-data-dir={profile}", *extra):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def server(webapp_server):
    return webapp_server.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


def state(browser) -> str:
    from selenium.webdriver.common.by import By
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def choose(browser, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.find_element(By.ID, "image-input").send_keys(str(path))
    button = browser.find_element(By.ID, "submit-button")
    WebDriverWait(browser, 10).until(lambda d: button.is_enabled())
    button.click()


def upload(browser, url: str, path: Path, load: bool = True) -> str:
    """Choose `path` on the page, press the button, wait for the answer; the page's state."""
    from selenium.webdriver.support.ui import WebDriverWait
    if load:
        browser.get(url + "/")
    choose(browser, path)
    return WebDriverWait(browser, 60).until(lambda d: state(d) if state(d) in ("done", "error") else None)


def text(browser, element_id: str) -> str:
    from selenium.webdriver.common.by import By
    return browser.find_element(By.ID, element_id).text


def canvas_image(browser, element_id: str = "result-canvas") -> np.ndarray:
    """What the canvas holds, as an RGB array."""
    url = browser.execute_script(f"return document.getElementById('{element_id}').toDataURL('image/png');")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def table(browser) -> dict:
    """{face number: {point: [x, y]}} from the page's table."""
    from selenium.webdriver.common.by import By
    coords = {}
    for r in browser.find_elements(By.CSS_SELECTOR, "#points-table tbody tr.point-row"):
        cells = [td.text for td in r.find_elements(By.TAG_NAME, "td")]
        coords.setdefault(int(cells[0]), {})[cells[1]] = [float(cells[2]), float(cells[3])]
    return coords


def small_screenshot(browser, name: str) -> None:
    """A screenshot in 256 colours, small enough to commit (webapp/README.md shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    shot.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(SCREENSHOTS / name, optimize=True)


CANVAS_STATS = """
const c = document.getElementById('result-canvas');
const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let lit = 0, green = 0;
for (let i = 0; i < px.length; i += 4) {
  if (px[i] + px[i + 1] + px[i + 2] > 30) lit++;
  if (px[i + 1] > 170 && px[i] < 60 && px[i + 2] < 60) green++;
}
return [c.width, c.height, lit, green];
"""


def test_two_faces_in_the_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    img, boxes = two_faces()
    photo = tmp_path / "two_faces.jpg"
    cv2.imwrite(str(photo), img)
    assert upload(browser, server, photo) == "done", text(browser, "message")
    message = text(browser, "message")
    rows = browser.find_elements(By.CSS_SELECTOR, "#points-table tbody tr.point-row")
    faces = sorted({r.get_attribute("data-face") for r in rows})
    assert len(faces) >= 2 and f"{len(faces)} faces found" in message
    assert len(rows) == 5 * len(faces)
    for face in faces:
        names = [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows if r.get_attribute("data-face") == face]
        assert names == ["LE", "RE", "N", "LM", "RM"]
    width, height, lit, green = browser.execute_script(CANVAS_STATS)
    assert (width, height) == (500, 250)
    assert lit > 0.5 * width * height, "the photo is drawn"
    assert green > 200, "the face boxes are drawn"

    # The table's coordinates are the API's: plausible points inside each listed face.
    coords = table(browser)
    for b in boxes:
        inside = [pts for pts in coords.values()
                  if all(b.left < x < b.right and b.top < y < b.bottom for x, y in pts.values())]
        assert len(inside) == 1, f"one face's points inside {b}"
        check_face(b, inside[0])


def test_no_face_and_bad_file_messages(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    photo = tmp_path / "no_face.png"
    cv2.imwrite(str(photo), no_face())
    assert upload(browser, server, photo) == "done"
    assert "No face found" in text(browser, "message")
    assert browser.find_elements(By.CSS_SELECTOR, "#points-table tbody tr") == []

    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo at all")
    assert upload(browser, server, junk) == "error"
    assert "not an image" in text(browser, "message")
    assert get(server + "/healthz")[0] == 200

    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * (11 * 1024 * 1024))
    assert upload(browser, server, big) == "error"
    assert "too large" in text(browser, "message")


def test_slow_client_does_not_block_others(server):
    """A client that sends its upload very slowly holds no model process: others are served."""
    port = int(server.rsplit(":", 1)[1])
    slow = socket.create_connection(("127.0.0.1", port))
    try:
        slow.sendall(b"POST /api/landmarks HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                     b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")
        time.sleep(0.5)
        t0 = time.time()
        for _ in range(3):
            status, body = get(server + "/healthz", timeout=5)
            assert status == 200 and body["status"] == "ok"
        assert time.time() - t0 < 5
    finally:
        slow.close()


def test_newer_upload_wins(server, browser, tmp_path):
    """A slow upload, then at once a quick one: the quick one's answer is shown, under its own
    name, and the slow one's later answer does not replace it."""
    img, _ = two_faces()
    slow = tmp_path / "slow_large.png"
    cv2.imwrite(str(slow), cv2.resize(img, (4000, 2000), interpolation=cv2.INTER_CUBIC))
    quick = tmp_path / "quick.jpg"
    cv2.imwrite(str(quick), read(ONE_FACE))
    browser.get(server + "/")
    choose(browser, slow)
    choose(browser, quick)
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 60).until(lambda d: state(d) in ("done", "error"))
    time.sleep(4)  # the slow photo's answer, were it still awaited, arrives meanwhile
    assert state(browser) == "done" and "quick.jpg: 1 face found" in text(browser, "message")
    assert text(browser, "result-name") == "quick.jpg"
    assert browser.execute_script("const c = document.getElementById('result-canvas'); return [c.width, c.height];") == [250, 250]
    (points,) = table(browser).values()
    check_face(listed(ONE_FACE).box, points)


def stored_turned(upright_rgb: np.ndarray, fmt: str, orientation: int, path: Path) -> None:
    """Save the upright picture turned so that EXIF orientation `orientation` shows it upright."""
    inverse = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    stored = Image.fromarray(upright_rgb).transpose(inverse[orientation])
    if fmt == "TIFF":
        stored.save(path, "TIFF", tiffinfo={0x0112: orientation})
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored.save(path, fmt, exif=exif, quality=95)


def upright_photo() -> np.ndarray:
    """The sample face on a 350x250 canvas (RGB): a width/height swap or a turn shows."""
    return np.hstack([cv2.cvtColor(read(ONE_FACE), cv2.COLOR_BGR2RGB), np.full((250, 100, 3), 40, np.uint8)])


def drawn_like(browser, picture: np.ndarray) -> bool:
    shown = canvas_image(browser)
    return shown.shape == picture.shape and np.abs(shown.astype(float) - picture).mean() < 12


def test_tiff_webp_and_jpeg_are_drawn_upright_in_turn(server, browser, tmp_path):
    """A TIFF (which browsers cannot show) and a WebP stored sideways with an EXIF orientation
    (which Chromium does not turn) are drawn from the server's upright copy; each new photo
    replaces the last drawing, and an error hides it."""
    upright = upright_photo()
    tiff, webp = tmp_path / "turned.tiff", tmp_path / "turned.webp"
    stored_turned(upright, "TIFF", 6, tiff)
    stored_turned(upright, "WEBP", 6, webp)
    pair, _ = two_faces()
    jpeg = tmp_path / "pair.jpg"
    cv2.imwrite(str(jpeg), pair, [cv2.IMWRITE_JPEG_QUALITY, 95])
    browser.get(server + "/")
    for path, picture in ((jpeg, cv2.cvtColor(pair, cv2.COLOR_BGR2RGB)), (tiff, upright), (jpeg, cv2.cvtColor(pair, cv2.COLOR_BGR2RGB)),
                          (webp, upright)):
        assert upload(browser, server, path, load=False) == "done", text(browser, "message")
        assert drawn_like(browser, picture), f"{path.name} is not what the canvas shows"
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    assert upload(browser, server, junk, load=False) == "error"
    from selenium.webdriver.common.by import By
    assert not browser.find_element(By.ID, "result-canvas").is_displayed()


def test_phone_width_has_no_horizontal_scroll(server, browser, tmp_path):
    """At 390 px a photo with a long name without spaces, its drawing and its table fit."""
    photo = tmp_path / ("a_photo_with_a_very_long_name_" * 6 + ".jpg")
    img, _ = two_faces()
    cv2.imwrite(str(photo), img)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        assert upload(browser, server, photo) == "done", text(browser, "message")
        widths = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth];")
        assert widths[1] == 390 and widths[0] <= widths[1], f"page {widths[0]} px wide in a {widths[1]} px window"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_result_screenshots(server, browser, tmp_path):
    """A group photo at desktop and phone widths: three faces, numbered left to right, each
    with its points in its own box; screenshots of both for webapp/README.md."""
    img, boxes = group()
    photo = tmp_path / "group.jpg"
    cv2.imwrite(str(photo), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    for width, name in ((None, "desktop.png"), (PHONE, "phone.png")):
        if width:
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", width)
        try:
            assert upload(browser, server, photo) == "done", text(browser, "message")
            coords = table(browser)
            assert sorted(coords) == [1, 2, 3]
            for number, box in zip((1, 2, 3), boxes):
                check_face(box, coords[number])
            if width:
                browser.execute_script("document.getElementById('result').scrollIntoView();")
            small_screenshot(browser, name)
        finally:
            if width:
                browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def colour_area(picture: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(picture.astype(int) - rgb).max(axis=2) <= tol).sum())


def test_faces_in_reading_order_and_marks_sized_to_faces(server, browser, tmp_path):
    """Four faces in two rows are numbered row by row; on a large photo the points are drawn
    at a size that follows the face (3.5% of its width), not a few pixels."""
    face = read(ONE_FACE)
    canvas = np.full((560, 620, 3), 128, np.uint8)
    spots = [(60, 20), (330, 40), (10, 300), (360, 280)]  # reading order
    for x, y in spots:
        canvas[y:y + 250, x:x + 250] = face
    four = tmp_path / "four.png"
    cv2.imwrite(str(four), canvas)
    assert upload(browser, server, four) == "done", text(browser, "message")
    coords = table(browser)
    assert sorted(coords) == [1, 2, 3, 4]
    for number, (x, y) in zip(range(1, 5), spots):
        eyes = np.mean([coords[number]["LE"], coords[number]["RE"]], axis=0)
        assert x < eyes[0] < x + 250 and y < eyes[1] < y + 250, (number, eyes, (x, y))

    big = cv2.resize(face, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    large = tmp_path / "large.jpg"
    cv2.imwrite(str(large), big)
    assert upload(browser, server, large) == "done", text(browser, "message")
    drawn = canvas_image(browser)
    box = listed(ONE_FACE).box
    face_px = box.width * 2000 / 250 * drawn.shape[1] / 2000  # the face's width on the canvas
    radius = np.sqrt(colour_area(drawn, (0x00, 0x80, 0xff)) / np.pi)  # the LE dot
    assert 0.025 < radius / face_px < 0.05, f"dot radius {radius:.1f} px on a {face_px:.0f} px face"


def test_downloads(server, browser, tmp_path):
    """The result as JSON (the API's answer, without the picture) and as a PNG with the points."""
    from selenium.webdriver.common.by import By
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    img, _ = two_faces()
    photo = tmp_path / "pair.jpg"
    cv2.imwrite(str(photo), img)
    assert upload(browser, server, photo) == "done"
    browser.find_element(By.ID, "download-json").click()
    browser.find_element(By.ID, "download-png").click()
    deadline = time.time() + 15
    wanted = {"pair.landmarks.json", "pair.landmarks.png"}
    while time.time() < deadline and {p.name for p in downloads.iterdir()} != wanted:
        time.sleep(0.2)
    assert {p.name for p in downloads.iterdir()} == wanted
    saved = json.loads((downloads / "pair.landmarks.json").read_text())
    assert saved["file"] == "pair.jpg" and "preview" not in saved
    shown = table(browser)
    assert len(saved["faces"]) == len(shown) >= 2
    for number, points in shown.items():
        for name, xy in points.items():
            assert np.allclose(saved["faces"][number - 1]["points"][name], xy, atol=0.051), (number, name)
    png = np.asarray(Image.open(downloads / "pair.landmarks.png").convert("RGB"))
    assert png.shape == (250, 500, 3)
    assert np.array_equal(png, canvas_image(browser)), "the PNG is the drawing on the page"
    assert colour_area(png, (0x00, 0xc8, 0x00), 40) > 200, "boxes drawn"

    # Each face's aligned crop, cut by the page with the API's matrix: what common.align cuts
    # from the photo (the page cuts from the server's JPEG copy: a few grey levels apart).
    from common.align import warp
    links = browser.find_elements(By.CSS_SELECTOR, "#crop-list a.crop-link")
    assert len(links) == len(saved["faces"])
    for link in links:
        link.click()
    crops = {f"pair.face{i}.png" for i in range(1, len(links) + 1)}
    deadline = time.time() + 15
    while time.time() < deadline and not crops <= {p.name for p in downloads.iterdir()}:
        time.sleep(0.2)
    photo_bgr = cv2.imread(str(photo))
    for i, face in enumerate(saved["faces"], 1):
        crop = np.asarray(Image.open(downloads / f"pair.face{i}.png").convert("RGB"))
        assert crop.shape == (112, 112, 3) and face["aligned"]["size"] == 112
        ours = warp(photo_bgr, np.array(face["aligned"]["matrix"]), 112)[..., ::-1]
        assert np.abs(crop.astype(float) - ours).mean() < 4, i


# ---- the camera ------------------------------------------------------------------------------

def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """A raw 4:2:0 video Chromium's fake camera can play (--use-file-for-fake-video-capture)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def camera_frames(n: int = 30) -> tuple[list[np.ndarray], np.ndarray]:
    """640x480 frames of the sample face (enlarged, drifting a few pixels) on a blurred
    faceless background, and the face's true points in the middle frame."""
    face = listed(ONE_FACE)
    scale = 1.6
    big = cv2.resize(read(ONE_FACE), None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    background = cv2.GaussianBlur(cv2.resize(no_face(), (640, 480)), (0, 0), 5)
    frames, truth = [], None
    for i in range(n):
        dx = int(round(8 * np.sin(2 * np.pi * i / n)))
        x0, y0 = 120 + dx, 40
        frame = background.copy()
        frame[y0:y0 + big.shape[0], x0:x0 + big.shape[1]] = big[:480 - y0, :640 - x0]
        frames.append(frame)
        if i == n // 2:
            truth = (face.points + 0.5) * scale - 0.5 + (x0, y0)
    return frames, truth


def test_camera_mode(server, tmp_path):
    """"Use camera" on Chromium's fake camera playing a video of a sample face: frames go to
    the server one after another and the points come back drawn over the video. Prints the
    frame rate and server time (target 10 frames/s at 640x480); the points are checked."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    frames, truth = camera_frames()
    video = tmp_path / "face.y4m"
    write_y4m(video, frames)
    driver = chromium(tmp_path / "profile", "--use-fake-device-for-media-stream",
                      "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={video}")
    try:
        driver.get(server + "/")
        driver.find_element(By.ID, "camera-mode").click()
        stats = driver.find_element(By.ID, "live-stats")
        WebDriverWait(driver, 30).until(lambda d: int(stats.get_attribute("data-frames")) >= 5)
        size = driver.execute_script("const v = document.getElementById('live-video'); return [v.videoWidth, v.videoHeight];")
        assert size == [640, 480]
        first, t0 = int(stats.get_attribute("data-frames")), time.monotonic()
        time.sleep(6)
        frames_done, seconds = int(stats.get_attribute("data-frames")) - first, time.monotonic() - t0
        fps = frames_done / seconds
        faces = json.loads(stats.get_attribute("data-faces"))
        server_ms = float(stats.get_attribute("data-server-ms"))
        small_screenshot(driver, "camera.png")
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "webapp_camera.json").write_text(json.dumps(
            {"frames_per_s": round(fps, 2), "frames": frames_done, "seconds": round(seconds, 2),
             "page_fps": float(stats.get_attribute("data-fps")), "server_ms_last": server_ms}) + "\n")
        print(f"camera: {fps:.1f} frames/s over {seconds:.1f} s, server {server_ms:.0f} ms for the last frame")
        # The points of the last answered frame, in video pixels, on the face (it drifts by 8 px).
        (face,) = faces
        points = np.array([face["points"][p] for p in ("LE", "RE", "N", "LM", "RM")])
        width = listed(ONE_FACE).box.width * 1.6
        assert np.linalg.norm(points - truth, axis=1).max() < 0.12 * width, (points, truth)
        assert fps >= 2.0, f"{fps:.1f} frames/s"
        overlay = canvas_image(driver, "live-overlay")
        assert overlay.shape == (480, 640, 3) and colour_area(overlay, (0x00, 0x80, 0xff)) > 20, "points drawn"
    finally:
        driver.quit()
