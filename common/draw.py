"""Drawing face boxes and five points onto an image (predict's output images and videos)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from common.nets import POINTS

BOX_COLOR = (0, 200, 0)  # BGR
# One colour per point, same order as POINTS: eyes blue/cyan, nose yellow, mouth red/magenta.
POINT_COLORS = ((255, 128, 0), (255, 255, 0), (0, 220, 255), (0, 0, 255), (255, 0, 255))


def draw_faces(image: np.ndarray, faces: Sequence, labels: bool = True) -> np.ndarray:
    """A BGR copy of `image` with each face's region (common.landmarker.Face) and points drawn;
    sizes follow the image."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image[:, :, :3].copy()
    scale = max(out.shape[:2]) / 500.0
    thick = max(2, round(2 * scale))
    radius = max(2, round(3 * scale))
    for face in faces:
        b = face.box
        # A tilted face's region is its box turned by -roll.
        cv2.polylines(out, [np.round(face.corners()).astype(np.int32)], True, BOX_COLOR, thick, cv2.LINE_AA)
        for name, (x, y), color in zip(POINTS, face.points, POINT_COLORS):
            cv2.circle(out, (round(x), round(y)), radius, color, -1, cv2.LINE_AA)
            if labels and b.width >= 60:
                cv2.putText(out, name, (round(x) + radius + 1, round(y) - radius - 1),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale, color, max(1, thick // 2),
                            cv2.LINE_AA)
    return out
