"""Shared machinery of dataset/level{1,2,3}.py: faces -> augmented crops -> HDF5 files.

Each face yields `variants` training samples: the face as it is, its mirror image, and random
variants (mirror or not, small rotation, small box shift/scale for level 1, a random shift of
the patch centre for levels 2-3; with `--wear P`, a share P of them cut from a worn copy of the
photo). Test files hold each face once, as it is.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common import hdf5data
from common.box import Box, Boxes
from common.cropkernel import SourceImages
from common.image import degraded
from common.listfile import FaceSample, mirror_points
from common.netfiles import hdf5_dir
from common.netinputs import crop_box, net_samples, standardise_all
from common.nets import CascadeNet
from common.paths import HDF5_DIR, rel

log = logging.getLogger(__name__)

# The release's share of worn random variants (since 2026-12-02): level 3 on blurred faces 1.74% ->
# 1.39% of the box width, on the faces as they are 1.09% -> 1.10% (docs/training.md).
WEAR = 0.5


@dataclass(frozen=True)
class Jitter:
    """Ranges of the random variants (uniform unless said)."""
    angle: float = 10.0          # degrees, +-
    shift: float = 0.04          # face box shift, fraction of box size, +- (level 1)
    scale: float = 0.05          # face box scale, +- (level 1)
    center_sigma: float = 0.0    # patch centre shift, fraction of face box, Gaussian (levels 2-3)
    center_clip: float = 0.0     # ... clipped at +- this
    # Level 1: Gaussian face box noise (dx, dy in box widths/heights, sx - 1, sy - 1) of this
    # 4x4 covariance, each part clipped at 3 standard deviations, instead of the uniform
    # shift/scale: the spread measured between the detector's placed boxes and the true ones.
    box_cov: tuple[tuple[float, ...], ...] | None = None
    # Share of the random variants whose photo is worn first (common.image.degraded: blur, JPEG,
    # noise, darkness, a small face blown up), drawn from a stream of its own, so that the
    # geometry stays as it is, and with 0 every sample is the plain photo's (the releases
    # before 2026-12-02).
    wear: float = WEAR


BOX_NOISE_CLIP = 3.0  # standard deviations
WEAR_STREAM = 7       # the wear's random stream per face: [seed, face index, WEAR_STREAM]


def box_noise(rng: np.random.Generator, cov) -> tuple[float, float, float, float]:
    """(dx, dy, sx, sy) for Box.moved, drawn from a zero-mean Gaussian of covariance `cov`."""
    cov = np.asarray(cov, dtype=np.float64)
    limit = BOX_NOISE_CLIP * np.sqrt(np.diag(cov))
    dx, dy, ex, ey = np.clip(rng.multivariate_normal(np.zeros(4), cov), -limit, limit)
    return float(dx), float(dy), 1.0 + float(ex), 1.0 + float(ey)


@dataclass(frozen=True)
class Job:
    specs: tuple[CascadeNet, ...]
    variants: int
    jitter: Jitter
    seed: int


@dataclass(frozen=True)
class Variant:
    """One training variant of a face: which image (mirrored or not), its turn, and the box
    each net crops."""
    mirror: bool
    angle: float
    crop_boxes: dict[str, Box]   # by net key


def face_variants(job: Job, index: int, face: FaceSample, estimates: np.ndarray | None,
                  image_width: int) -> list[Variant]:
    """The job's variants of one face (the face itself, its mirror image, then random ones),
    drawn from the face's own random stream: the same whichever worker builds it."""
    rng = np.random.default_rng([job.seed, index])
    mirrored_box = face.mirrored(image_width).box
    mirrored_est = None if estimates is None else mirror_points(estimates, image_width)
    out = []
    for v in range(job.variants):
        mirror = v == 1 or (v >= 2 and rng.random() < 0.5)
        random_variant = v >= 2
        box, est = (mirrored_box, mirrored_est) if mirror else (face.box, estimates)
        angle = 0.0
        if random_variant:
            j = job.jitter
            angle = rng.uniform(-j.angle, j.angle)
            if j.box_cov is not None:
                box = box.moved(*box_noise(rng, j.box_cov))
            elif j.shift or j.scale:
                box = box.moved(rng.uniform(-j.shift, j.shift), rng.uniform(-j.shift, j.shift),
                                1.0 + rng.uniform(-j.scale, j.scale))
        boxes = {}
        for spec in job.specs:
            center = None
            if spec.half_size is not None:
                center = est[spec.point_indices[0]].copy()
                if random_variant and job.jitter.center_sigma:
                    noise = rng.normal(0.0, job.jitter.center_sigma, 2)
                    noise = np.clip(noise, -job.jitter.center_clip, job.jitter.center_clip)
                    center += noise * (box.width, box.height)
            boxes[spec.key] = crop_box(spec, box, center)
        out.append(Variant(mirror, angle, boxes))
    return out


def face_samples(job: Job, index: int, face: FaceSample, estimates: np.ndarray | None):
    """All samples of one face: per net, (inputs (V, H, W), targets (V, K)) of its V variants."""
    gray = face.load_gray()
    width = gray.shape[1]
    flipped = gray[:, ::-1].copy() if job.variants > 1 else None
    mirrored = face.mirrored(width).points
    variants = face_variants(job, index, face, estimates, width)
    images = [flipped if v.mirror else gray for v in variants]
    if job.jitter.wear:
        rng = np.random.default_rng([job.seed, index, WEAR_STREAM])
        for v in range(2, len(images)):
            if rng.random() < job.jitter.wear:
                images[v] = np.ascontiguousarray(degraded(images[v], face.box.width, rng))
    images = SourceImages(images)
    points = np.stack([mirrored if v.mirror else face.points for v in variants])
    angles = np.array([v.angle for v in variants])
    out = {}
    for spec in job.specs:
        # All variants of one net at once: the bytes of net_input and net_target one by one.
        boxes = Boxes.of([v.crop_boxes[spec.key] for v in variants])
        crops, targets = net_samples(images, boxes, spec, points, angles)
        # Standardised together: per crop, the same values as net_input (tests/test_build.py).
        out[spec.key] = (standardise_all(crops), targets)
    return out


def _work(args):
    job, index, face, est = args
    return face_samples(job, index, face, est)


def build_arrays(faces: list[FaceSample], job: Job, estimates: np.ndarray | None = None,
                 desc: str = "crops", workers: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Samples of all faces for every net of the job, as (N, 1, H, W) and (N, K) arrays."""
    workers = workers or os.cpu_count() or 1
    tasks = [(job, i, f, None if estimates is None else estimates[i]) for i, f in enumerate(faces)]
    inputs = {s.key: [] for s in job.specs}
    targets = {s.key: [] for s in job.specs}
    with Pool(workers) as pool:
        for res in tqdm(pool.imap(_work, tasks, chunksize=32), total=len(tasks), desc=desc,
                        unit="face", dynamic_ncols=True, mininterval=1.0):
            for key, (x, y) in res.items():
                inputs[key].append(x)
                targets[key].append(y)
    return {k: (np.concatenate(inputs[k])[:, None], np.concatenate(targets[k])) for k in inputs}


# A patch net cannot find a point that lies a whole patch away from its patch centre (the
# previous level failed on that face); such samples only teach it noise.
PATCH_TARGET_RANGE = (-0.5, 1.5)


def _within_patch(spec: CascadeNet, x: np.ndarray, y: np.ndarray, name: str):
    if spec.half_size is None:
        return x, y
    lo, hi = PATCH_TARGET_RANGE
    keep = ((y > lo) & (y < hi)).all(axis=1)
    if not keep.all():
        log.info(f"{spec.key} {name}: left out {int((~keep).sum())} of {len(y)} samples whose point lies "
                 f"outside the patch by more than half its size (previous level failed there)")
    return x[keep], y[keep]


def write_level(train_faces: list[FaceSample], test_faces: list[FaceSample], specs: list[CascadeNet],
                variants: int, jitter: Jitter, seed: int, hdf5_root: Path = HDF5_DIR,
                train_estimates: np.ndarray | None = None, test_estimates: np.ndarray | None = None,
                force: bool = False) -> dict[str, dict[str, int]]:
    """Build and write train/test HDF5 files of `specs`; returns the counts per net."""
    todo = [s for s in specs if force or not hdf5data.is_complete(hdf5_dir(s, hdf5_root))]
    for s in specs:
        if s not in todo:
            log.info(f"{rel(hdf5_dir(s, hdf5_root))}: complete, skipped (--force rebuilds)")
    if not todo:
        return {}
    t0 = time.time()
    train = build_arrays(train_faces, Job(tuple(todo), variants, jitter, seed), train_estimates,
                         desc=f"train x{variants}")
    test = build_arrays(test_faces, Job(tuple(todo), 1, jitter, seed), test_estimates, desc="test")
    counts = {}
    rng = np.random.default_rng(seed)
    for s in todo:
        folder = hdf5_dir(s, hdf5_root)
        x, y = _within_patch(s, *train[s.key], "train")
        order = rng.permutation(len(x))  # Caffe also shuffles each epoch; this mixes the file
        hdf5data.write(folder / "train.h5", x[order], y[order])
        test[s.key] = _within_patch(s, *test[s.key], "test")
        hdf5data.write(folder / "test.h5", *test[s.key])
        hdf5data.write_meta(folder, train=len(x), test=len(test[s.key][0]),
                            train_faces=len(train_faces), test_faces=len(test_faces), variants=variants)
        counts[s.key] = {"train": len(x), "test": len(test[s.key][0])}
        log.info(f"{rel(folder)}: train {x.shape[0]} x {x.shape[2]}x{x.shape[3]}, "
                 f"test {counts[s.key]['test']}, targets in [{y.min():.3f}, {y.max():.3f}]")
    log.info(f"wrote {len(todo)} nets' data in {time.time() - t0:.0f} s")
    return counts
