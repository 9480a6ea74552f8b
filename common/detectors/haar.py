"""OpenCV's Haar cascade (bundled with the opencv wheel): the fallback that needs nothing else.
Frontal, upright faces only; no points."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from common.box import Box
from common.detectors import TURNED_SEARCH, Detection
from common.image import to_gray, shrink_to


@dataclass(frozen=True)
class HaarSettings:
    cascade: str = "haarcascade_frontalface_alt2.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 4
    min_size: int = 24   # pixels of the (possibly shrunk) image searched
    max_side: int = 1024  # larger images are searched on a shrunk copy


class Haar:
    name = "haar"
    default_angles = TURNED_SEARCH

    def __init__(self, **settings):
        self.config = HaarSettings(**settings)
        xml = Path(cv2.data.haarcascades) / self.config.cascade
        self.classifier = cv2.CascadeClassifier(str(xml))
        if self.classifier.empty():
            raise FileNotFoundError(f"cannot load the Haar cascade {xml}")

    def settings(self) -> dict:
        return asdict(self.config)

    def min_face(self, height: int, width: int, turned: bool = False) -> None:
        return None  # min_size, in the pixels of the copy searched

    def work_scale(self, height: int, width: int, turned: bool = False) -> float:
        # A turned copy is larger than the photo (up to its diagonal at 45 degrees): shrink
        # the photo so that the turned copy fits, and detect() need not shrink it again.
        side = max(height, width, (height + width) / 2 ** 0.5 if turned else 0)
        return min(1.0, self.config.max_side / side)

    def detect(self, image: np.ndarray, min_face: float | None = None) -> list[Detection]:
        small, kx, ky = shrink_to(to_gray(image), self.config.max_side)
        c = self.config
        found, neighbours = self.classifier.detectMultiScale2(small, scaleFactor=c.scale_factor,
                                                              minNeighbors=c.min_neighbors,
                                                              minSize=(c.min_size, c.min_size))
        # Haar gives no probability; how many windows agreed on a box is its evidence (a face:
        # 17-19 on the speed photo of benchmarks/detection.py; a box on its hair overlapping it:
        # 8-9). As a score in (0, 1), so that of two boxes of one face the better-supported one
        # is kept (common.orientation.merge); with every score 1 the smaller box won, there the
        # one on the hair at 4000x3000.
        return [Detection(Box.from_xywh(x, y, w, h, kx, ky), n / (n + c.min_neighbors))
                for (x, y, w, h), n in zip((map(float, r) for r in found), np.ravel(neighbours).tolist())]
