"""Net inputs and targets: which box each net crops, its standardised crop (cut by common.box)
and the points relative to it, for one face or a training batch.

Training data (dataset/) and inference (common/cascade.py) both call these, so the nets see
the same pixels in both.
"""
from __future__ import annotations

import numpy as np

from typing import Sequence

from common.box import Box, Boxes
from common.nets import CascadeNet


def standardise(patch: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per image (float32). A flat patch becomes all zeros."""
    x = patch.astype(np.float32)
    x -= x.mean()
    std = float(x.std())
    return x / std if std > 1e-6 else x


def standardise_all(patches: np.ndarray) -> np.ndarray:
    """`standardise` of each patch of a stack (N, H, W), in one pass."""
    x = patches.astype(np.float32)
    x -= x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return np.divide(x, std, out=x, where=std > 1e-6)


def crop_box(spec: CascadeNet, face_box: Box, center: tuple[float, float] | None = None) -> Box:
    """The box net `spec` looks at: a region of the face box (level 1), or a square patch of
    the face box's proportions centred on an estimate of its point (levels 2-3)."""
    if spec.region is not None:
        return face_box.sub(spec.region)
    if center is None:
        raise ValueError(f"net {spec.name} needs the estimate of {spec.points[0]} to centre its patch")
    return face_box.patch(center[0], center[1], spec.half_size)


def crop_boxes(specs: Sequence[CascadeNet], faces: Boxes, estimates: np.ndarray | None = None) -> Boxes:
    """`crop_box` of each of the N faces for each of K nets of one level: boxes (K, N).
    `estimates` (N, 5, 2): the points the patch nets centre on."""
    if all(s.region is not None for s in specs):
        return faces.sub([s.region for s in specs])
    if estimates is None or any(s.half_size is None for s in specs):
        raise ValueError("patch nets need the previous level's estimates, and one level's nets "
                         "are either all region nets or all patch nets")
    centers = estimates[:, [s.point_indices[0] for s in specs]].transpose(1, 0, 2)
    return faces.patches(centers, [s.half_size for s in specs])


def net_input(gray: np.ndarray, box: Box, spec: CascadeNet, angle: float = 0.0) -> np.ndarray:
    """Standardised (height, width) float32 crop of `box` for net `spec`."""
    return standardise(box.crop(gray, spec.width, spec.height, angle))


def net_target(box: Box, points: np.ndarray, spec: CascadeNet, angle: float = 0.0,
               rotation: np.ndarray | None = None) -> np.ndarray:
    """The net's points relative to its crop box, flattened as x1 y1 x2 y2 ... (float32)."""
    chosen = np.asarray(points)[list(spec.point_indices)]
    return box.to_relative(chosen, angle, rotation).astype(np.float32).ravel()


def net_samples(images, boxes: Boxes, spec: CascadeNet, points: np.ndarray,
                angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N training samples of net `spec`: (the crops before standardisation (N, H, W), the
    targets (N, 2k) float32). Box i is cut from images[i] (a list or its SourceImages) turned by
    angles[i]; points (N, 5, 2). Each sample's crop and target share one rotation matrix, and
    the numbers are net_input's (after `standardise_all`) and net_target's, bit for bit."""
    rotations = boxes.rotations(angles) if np.any(angles) else None
    crops = boxes.crops(images, spec.width, spec.height, rotations=rotations)
    chosen = np.asarray(points)[:, list(spec.point_indices)]
    targets = boxes.to_relative(chosen, angles, rotations).astype(np.float32).reshape(len(boxes), -1)
    return crops, targets
