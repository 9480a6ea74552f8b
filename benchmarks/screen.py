"""Faces that the CUHK list does not name: each test image holds one listed face, but many hold
more people (crowds, a child under a hat, a face cut by the photo's edge). benchmarks/
detection.py's photos with no face (and wild.py's photos with --screen) take no background
piece that covers one of them.

They are found by YuNet (libfacedetection's Python package `yuface`, BSD-3, pinned in
requirements.txt): a detector trained apart from every net on the photo path, so the screen
does not remove just the pieces our own nets find hard. Each image is screened once, on first
use, and the boxes are kept in a cache file (CACHE) keyed by the image's path under the data
folder.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import cv2

PINNED = "yuface==2023.5.1"
CACHE = Path.home() / ".cache" / "deep-landmark" / f"other-faces-{PINNED.replace('==', '-')}.json"
# YuNet's score (0..1) to count a face: low, so that a half-hidden or blurred face counts too
# (a false face there only costs a piece).
SCORE = 0.3
# Images this small are searched at twice their size too: YuNet misses faces under about 10 px,
# and people in the background of a 250x250 photo are 15-30 px.
ENLARGE_BELOW = 480
# A piece is refused when it covers this share of an unlisted face's box (a piece with the
# eyes of a face and nothing else is a face to a detector).
COVER = 0.1


class ScreenUnavailable(Exception):
    """yuface is not installed; the message says what to run."""


def open_screen(ap, data_root: Path) -> "OtherFaces":
    """OtherFaces for a benchmark's command line: an argparse error, saying what to run, when
    yuface is not installed."""
    try:
        return OtherFaces(data_root)
    except ScreenUnavailable as exc:
        ap.error(str(exc))


class OtherFaces:
    """The boxes (left, top, right, bottom, in image pixels) of the faces in a sample's image
    other than its listed one."""

    def __init__(self, data_root: Path, cache: Path = CACHE):
        try:
            import yuface  # noqa: F401  (checked here, used in boxes)
        except ImportError:
            raise ScreenUnavailable(f"{PINNED} is not installed; run scripts/setup.sh") from None
        self.data_root = Path(data_root)
        self.cache = cache
        self._boxes: dict[str, list] = {}
        self._new = 0
        if cache.is_file():
            try:
                self._boxes = json.loads(cache.read_text())
            except (OSError, ValueError):
                self._boxes = {}

    def key(self, sample) -> str:
        try:
            return Path(sample.image_path).resolve().relative_to(self.data_root.resolve()).as_posix()
        except ValueError:
            return str(Path(sample.image_path).resolve())

    def boxes(self, sample, image=None) -> list[tuple[float, float, float, float]]:
        """Unlisted faces in `sample`'s image (`image`: the image when already read)."""
        key = self.key(sample)
        if key not in self._boxes:
            img = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR) if image is None else image
            self._boxes[key] = [] if img is None else unlisted(detect(img), sample.box)
            self._new += 1
            if self._new % 100 == 0:
                self.save()
        return [tuple(b) for b in self._boxes[key]]

    def save(self) -> None:
        """Writes what was screened so far (a run cut short keeps it)."""
        if not self._new:
            return
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._boxes))
        os.replace(tmp, self.cache)


def detect(img) -> list[tuple[float, float, float, float]]:
    """YuNet's faces in a BGR image as (left, top, right, bottom), at its size and, when small,
    at twice it."""
    import yuface
    found = []
    for k in ((1.0, 2.0) if max(img.shape[:2]) <= ENLARGE_BELOW else (1.0,)):
        big = img if k == 1.0 else cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR)
        with warnings.catch_warnings():   # it warns above 960 px; the enlarged copy stays below
            warnings.simplefilter("ignore")
            _, xywh, _ = yuface.detect(big, SCORE)
        found += [(x / k, y / k, (x + w) / k, (y + h) / k) for x, y, w, h in xywh.astype(float)]
    return found


def unlisted(found, listed) -> list[tuple[float, float, float, float]]:
    """The found boxes whose centre lies outside the listed face's box."""
    def inside(b) -> bool:
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        return listed.left <= cx <= listed.right and listed.top <= cy <= listed.bottom
    return [tuple(round(v, 1) for v in b) for b in found if not inside(b)]


def covers(window: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> bool:
    """Whether `window` (left, top, right, bottom) holds COVER or more of `box`'s area."""
    iw = min(window[2], box[2]) - max(window[0], box[0])
    ih = min(window[3], box[3]) - max(window[1], box[1])
    area = max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)
    return iw > 0 and ih > 0 and iw * ih >= COVER * area
