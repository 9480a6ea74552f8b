"""How far predicted points lie from the true ones: the error measure of the paper and its
summaries, shared by the evaluation, the report and the data builder of levels 2-3.

Error = distance from a predicted point to the true one / the face box width; a failure is an
error above FAILURE. Results are keyed by what produced them: "1", "2", "3" (the cascade after
that level) and F1_ALONE (the net F1 by itself, the paper's baseline).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from common.nets import POINTS

FAILURE = 0.05
F1_ALONE = "F1"


def errors(pred: np.ndarray, truth: np.ndarray, box_widths: np.ndarray) -> np.ndarray:
    """(N, 5) point-to-truth distances divided by the face box width, for points `pred` and
    `truth` (N, 5, 2) in pixels and `box_widths` (N,)."""
    return np.linalg.norm(pred - truth, axis=2) / np.asarray(box_widths)[:, None]


def face_errors(pred: np.ndarray, faces: Sequence) -> np.ndarray:
    """`errors` of points `pred` (N, 5, 2) against list-file faces (common.listfile.FaceSample:
    their points and box widths): (N, 5)."""
    return errors(pred, np.stack([f.points for f in faces]), np.array([f.box.width for f in faces]))


def summary(err: np.ndarray) -> dict:
    """Per point and over all points: mean error and failure rate of errors (N, 5); and N."""
    out = {p: {"mean_error": float(err[:, i].mean()), "failure_rate": float((err[:, i] > FAILURE).mean())}
           for i, p in enumerate(POINTS)}
    out["mean_error"] = float(err.mean())
    out["failure_rate"] = float((err > FAILURE).mean())
    out["faces"] = int(len(err))
    return out


def result_name(key: str, level_word: bool = True) -> str:
    """How a results key reads: "F1 alone", else "level 2" (or "2" without `level_word`, in a
    column headed "level")."""
    if key == F1_ALONE:
        return "F1 alone"
    return f"level {key}" if level_word else key
