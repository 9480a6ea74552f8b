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

from common.box import Box

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
    """The boxes (in image pixels) of the faces in a sample's image other than its listed one;
    the cache keeps each as [left, top, right, bottom]."""

    def __init__(self, data_root: Path, cache: Path = CACHE):
        try:
            import yuface  # noqa: F401  (checked here, used in boxes)
        except ImportError:
            raise ScreenUnavailable(f"{PINNED} is not installed; run scripts/setup.sh") from None
        self.data_root = Path(data_root).resolve()
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
            return Path(sample.image_path).resolve().relative_to(self.data_root).as_posix()
        except ValueError:
            return str(Path(sample.image_path).resolve())

    def boxes(self, sample, image=None) -> list[Box]:
        """Unlisted faces in `sample`'s image (`image`: the image when already read)."""
        key = self.key(sample)
        if key not in self._boxes:
            img = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR) if image is None else image
            self._boxes[key] = [] if img is None else unlisted(detect(img), sample.box)
            self._new += 1
            if self._new % 100 == 0:
                self.save()
        return [Box(left, right, top, bottom) for left, top, right, bottom in self._boxes[key]]

    def save(self) -> None:
        """Writes what was screened so far (a run cut short keeps it)."""
        if not self._new:
            return
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._boxes))
        os.replace(tmp, self.cache)


def detect(img) -> list[Box]:
    """YuNet's faces in a BGR image, at its size and, when small, at twice it."""
    import yuface
    found = []
    for k in ((1.0, 2.0) if max(img.shape[:2]) <= ENLARGE_BELOW else (1.0,)):
        big = img if k == 1.0 else cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_LINEAR)
        with warnings.catch_warnings():   # it warns above 960 px; the enlarged copy stays below
            warnings.simplefilter("ignore")
            _, xywh, _ = yuface.detect(big, SCORE)
        found += [Box.from_xywh(x, y, w, h, 1 / k, 1 / k)
                  for x, y, w, h in xywh.astype(float) if w > 0 and h > 0]
    return found


def unlisted(found: list[Box], listed: Box) -> list[list[float]]:
    """The found boxes whose centre lies outside the listed face's box, as the cache keeps them."""
    def inside(b: Box) -> bool:
        cx, cy = b.center
        return listed.left <= cx <= listed.right and listed.top <= cy <= listed.bottom
    return [[round(v, 1) for v in (b.left, b.top, b.right, b.bottom)] for b in found if not inside(b)]


def covers(window: Box, face: Box) -> bool:
    """Whether `window` holds COVER or more of `face`'s area."""
    return window.overlap(face) >= COVER * face.width * face.height
