"""The page in a real browser (headless Chromium driven by selenium) against the production
server: ./webapp/run.sh (gunicorn, 2 workers) started on a free port on 127.0.0.1.

Needs Debian's chromium + chromium-driver: `bash scripts/setup.sh --browser`.
"""
from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import cv2
import pytest

from conftest import OUTPUT
from landmark_photos import check_face, no_face, two_faces
from webapp import launch

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def get(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app served by webapp/run.sh (2 workers); yields its base URL."""
    log_path = tmp_path_factory.mktemp("server") / "gunicorn.log"
    try:
        proc, url = launch.start(workers=2, extra=["--timeout", "20"], log=log_path)
    except launch.ServerFailed as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        launch.stop(proc)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_path, OUTPUT / "webapp_server.log")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).is_file(), f"{path} missing: run `bash scripts/setup.sh --browser`"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,1100",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def upload(browser, url: str, path: Path) -> str:
    """Choose `path` on the page, press the button, wait for the answer; the page's state."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(url + "/")
    browser.find_element(By.ID, "image-input").send_keys(str(path))
    button = browser.find_element(By.ID, "submit-button")
    WebDriverWait(browser, 10).until(lambda d: button.is_enabled())
    button.click()
    return WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
        if d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error") else None)


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
    assert upload(browser, server, photo) == "done", browser.find_element(By.ID, "message").text
    message = browser.find_element(By.ID, "message").text
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
    OUTPUT.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(OUTPUT / "webapp_two_faces.png"))

    # The table's coordinates are the API's: plausible points inside each listed face.
    coords = {}
    for r in rows:
        cells = [td.text for td in r.find_elements(By.TAG_NAME, "td")]
        coords.setdefault(cells[0], {})[cells[1]] = [float(cells[2]), float(cells[3])]
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
    assert "No face found" in browser.find_element(By.ID, "message").text
    assert browser.find_elements(By.CSS_SELECTOR, "#points-table tbody tr") == []
    browser.save_screenshot(str(OUTPUT / "webapp_no_face.png"))

    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo at all")
    assert upload(browser, server, junk) == "error"
    assert "not an image" in browser.find_element(By.ID, "message").text
    assert get(server + "/healthz")[0] == 200

    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8\xff" + b"\0" * (11 * 1024 * 1024))
    assert upload(browser, server, big) == "error"
    assert "too large" in browser.find_element(By.ID, "message").text


def test_slow_client_does_not_block_others(server):
    """A client that sends its upload very slowly holds one worker; the other keeps serving."""
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
