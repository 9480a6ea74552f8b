"""HDF5 training files in the layout Caffe's HDF5Data layer reads: `data` (N, 1, H, W) float32
and `landmark` (N, K) float32, plus the text file listing them that the prototxt names."""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from common.paths import rel

# Targets are box-relative; a point this far outside its crop means broken geometry.
TARGET_RANGE = (-1.0, 2.0)


class BadData(ValueError):
    pass


def validate(data: np.ndarray, targets: np.ndarray, name: str) -> None:
    if data.ndim != 4 or data.shape[1] != 1:
        raise BadData(f"{name}: data must be (N, 1, H, W), got {data.shape}")
    if targets.ndim != 2 or len(targets) != len(data):
        raise BadData(f"{name}: targets must be (N, K) with N={len(data)}, got {targets.shape}")
    if len(data) == 0:
        raise BadData(f"{name}: no samples")
    if not np.isfinite(data).all():
        raise BadData(f"{name}: non-finite pixels in {int((~np.isfinite(data)).any(axis=(1, 2, 3)).sum())} samples")
    if not np.isfinite(targets).all():
        raise BadData(f"{name}: non-finite targets")
    lo, hi = float(targets.min()), float(targets.max())
    if lo < TARGET_RANGE[0] or hi > TARGET_RANGE[1]:
        raise BadData(f"{name}: targets span [{lo:.3f}, {hi:.3f}], outside the sane range {TARGET_RANGE}")


def write(path: Path, data: np.ndarray, targets: np.ndarray) -> None:
    """Validate, then write to a temporary name and rename: an interrupted run never leaves a
    half file that looks whole. Also writes `<stem>.txt`, the list Caffe's HDF5Data reads."""
    path = Path(path)
    validate(data, targets, rel(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("data", data=data.astype(np.float32))
        f.create_dataset("landmark", data=targets.astype(np.float32))
    os.replace(tmp, path)
    path.with_suffix(".txt").write_text(rel(path) + "\n")


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as f:
        return f["data"][:], f["landmark"][:]


def write_meta(folder: Path, **counts) -> None:
    """meta.json: sample counts (the generator sizes Caffe's test_iter from it)."""
    tmp = Path(folder) / "meta.json.partial"
    tmp.write_text(json.dumps(counts, indent=1) + "\n")
    os.replace(tmp, Path(folder) / "meta.json")


def is_complete(folder: Path) -> bool:
    folder = Path(folder)
    return all((folder / n).is_file() for n in ("train.h5", "test.h5", "meta.json"))
