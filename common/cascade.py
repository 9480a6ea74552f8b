"""Cascade inference through OpenCV's DNN module on the deploy prototxt + caffemodel files that
Caffe trained.

Level 1 averages every net that predicts a point (F1, EN1, NM1). Levels 2 and 3 crop a patch
around each current estimate per net, map each net's output back through its own patch box,
and add the mean of the two nets' displacements. Many faces go through each net at once.

Test-time mirroring (on by default; `mirror=False` for the paper's cascade at half the net
time): every net also runs on the flipped crop of its mirror partner (F1 on its own flipped
crop, LE21 on RE21's), which it sees as a face in a mirror, and each net's estimate is the mean
of the two. The nets were trained on mirrored faces too, so this averages twice as many
estimates from the same 23 nets: level 3 1.14% -> 1.10% of the box width on the CUHK test split.

A model folder holds <level>_<name>/deploy.prototxt and <level>_<name>/weights.caffemodel for
each net (common.netfiles): model/ after training here, or model/released/ (the project's
default model).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from common.box import Box, Boxes
from common.cropkernel import SourceImages
from common.nets import NETS, POINTS, CascadeNet, mirror_partner, of_level
from common.netfiles import deploy_files, levels_available, missing_nets, resolve_model
from common.netinputs import crop_boxes, standardise_all
from common.paths import rel

Grays = Sequence[np.ndarray] | SourceImages  # face i's gray image


class ModelMissing(FileNotFoundError):
    """A model folder lacks nets the cascade needs; the message names them."""


class Cascade:
    def __init__(self, model_root: str | os.PathLike | None = None, levels: int | None = None,
                 batch_size: int = 256, mirror: bool = True):
        """Loads levels 1..`levels` (None: all levels the folder holds, at least 1); `mirror`:
        test-time mirroring (the module's doc)."""
        self.model_root = resolve_model(model_root)
        have = levels_available(self.model_root)
        levels = levels or max(have, 1)
        if have < levels:
            missing = missing_nets(self.model_root, levels)
            raise ModelMissing(f"model folder {rel(self.model_root)} lacks level {have + 1} "
                               f"({', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}); "
                               "train it (./bootstrap.sh) or choose another folder")
        self.levels = levels
        self.batch_size = batch_size
        self.mirror = mirror
        self.nets: dict[str, cv2.dnn.Net] = {}
        self._pools: dict[int, ThreadPoolExecutor] = {}  # by thread count
        for spec in NETS:
            if spec.level <= levels:
                deploy, weights = deploy_files(spec, self.model_root)
                net = cv2.dnn.readNetFromCaffe(str(deploy), str(weights))
                net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
                net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
                self.nets[spec.key] = net

    def _crop_pool(self) -> ThreadPoolExecutor | None:
        """Threads for cutting crops, as many as OpenCV uses (none when it uses one)."""
        threads = cv2.getNumThreads()
        if threads <= 1:
            return None
        if threads not in self._pools:
            self._pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="crops")
        return self._pools[threads]

    def net_inputs_shapes(self) -> dict[cv2.dnn.Net, tuple[int, int, int]]:
        """Each loaded net and its input (height, width, channels): for timing the nets alone."""
        return {self.nets[s.key]: (s.height, s.width, 1) for s in NETS if s.key in self.nets}

    # --- one net ------------------------------------------------------------------------
    def forward(self, spec: CascadeNet, inputs: np.ndarray) -> np.ndarray:
        """Raw outputs (N, 2k) of net `spec` for standardised inputs (N, H, W)."""
        net = self.nets[spec.key]
        if len(inputs) <= self.batch_size and inputs.dtype == np.float32 and inputs.flags.c_contiguous:
            net.setInput(inputs[:, None])
            return net.forward().reshape(len(inputs), -1)
        outs = []
        for i in range(0, len(inputs), self.batch_size):
            blob = np.ascontiguousarray(inputs[i:i + self.batch_size, None], dtype=np.float32)
            net.setInput(blob)
            outs.append(net.forward().reshape(len(blob), -1))
        return np.concatenate(outs) if outs else np.zeros((0, spec.n_outputs), np.float32)

    # --- levels -------------------------------------------------------------------------
    def net_points(self, specs: Sequence[CascadeNet], grays: Grays, faces: Boxes,
                   estimates: np.ndarray | None = None, mirror: bool | None = None) -> list[np.ndarray]:
        """Each net's points (N, k, 2) in image pixels, for nets `specs` of one level (`grays`:
        face i's gray image, a list or its SourceImages).

        All crops of a level are cut and standardised together, one batch per input size, so
        the per-net work is only the forward pass. With mirroring, each net's estimate is the
        mean of its own and its mirror partner's on the flipped crop (the same crops, flipped:
        no second cut). `mirror`: None for the cascade's own setting.
        """
        boxes = crop_boxes(specs, faces, estimates)  # (K, N)
        sources = grays if isinstance(grays, SourceImages) else SourceImages(grays)
        n = len(faces)
        relative: list[np.ndarray] = [np.empty(0)] * len(specs)
        mirror = self.mirror if mirror is None else mirror
        for (w, h), ks, partners in level_plan(tuple(specs)):
            crops = boxes[list(ks)].ravel().crops(sources.repeat(len(ks)), w, h, self._crop_pool())
            inputs = standardise_all(crops).reshape(len(ks), n, h, w)
            if not mirror:
                for j, k in enumerate(ks):
                    relative[k] = self.forward(specs[k], inputs[j]).reshape(n, -1, 2)
                continue
            # Each net runs once on its own crops and its mirror partner's flipped ones, in one
            # batch: half the forward calls of running them apart, the same numbers.
            seen_mirrored = {}
            for k, p, order, j in partners:
                if p is None:
                    relative[k] = self.forward(specs[k], inputs[j]).reshape(n, -1, 2)
                    continue
                both = np.concatenate((inputs[j], inputs[p][:, :, ::-1]))
                out = self.forward(specs[k], both).reshape(2, n, -1, 2)
                relative[k] = out[0]
                found = out[1][:, order]
                found[..., 0] = 1.0 - found[..., 0]  # back from the flipped crop
                seen_mirrored[ks[p]] = found
            for k, found in seen_mirrored.items():
                relative[k] = (relative[k] + found) / 2.0
        if len({r.shape for r in relative}) == 1:
            return list(boxes.to_absolute(np.stack(relative)))
        return [boxes[k].to_absolute(r) for k, r in enumerate(relative)]

    def level1(self, grays: Grays, faces: Sequence[Box] | Boxes,
               nets: Sequence[str] | None = None, record: list | None = None,
               mirror: bool | None = None) -> np.ndarray:
        """Mean (N, 5, 2) of the level-1 nets' estimates per point (`nets`: only these, e.g.
        ["F1"]; `record`: a list that gets (spec, points (N, k, 2)) for each net)."""
        faces = faces if isinstance(faces, Boxes) else Boxes.of(faces)
        specs = [s for s in of_level(1) if nets is None or s.name in nets]
        total = np.zeros((len(POINTS), len(faces), 2))  # point-major, for np.add.at
        count = np.zeros(len(POINTS))
        found = self.net_points(specs, grays, faces, mirror=mirror)
        if record is not None:
            record.extend(zip(specs, found))
        for spec, points in zip(specs, found):
            np.add.at(total, list(spec.point_indices), points.transpose(1, 0, 2))
            count[list(spec.point_indices)] += 1
        return (total / count[:, None, None]).transpose(1, 0, 2)

    def patch_level(self, level: int, grays: Grays, faces: Sequence[Box] | Boxes,
                    estimates: np.ndarray, record: list | None = None,
                    mirror: bool | None = None) -> np.ndarray:
        """Estimates (N, 5, 2) moved by the mean displacement the level's nets find per point
        (`record`: a list that gets (spec, point (N, 1, 2)) for each net)."""
        faces = faces if isinstance(faces, Boxes) else Boxes.of(faces)
        specs = of_level(level)
        which = [s.point_indices[0] for s in specs]
        found = np.stack(self.net_points(specs, grays, faces, estimates, mirror))[:, :, 0]  # (K, N, 2)
        if record is not None:
            record.extend((spec, f[:, None]) for spec, f in zip(specs, found))
        shift = np.zeros((len(POINTS), len(faces), 2))
        # np.add.at adds in net order: the same sums as one net at a time.
        np.add.at(shift, which, found - estimates[:, which].transpose(1, 0, 2))
        count = np.bincount(which, minlength=len(POINTS)).astype(float)
        return estimates + (shift / count[:, None, None]).transpose(1, 0, 2)

    def estimates(self, grays: Grays, faces: Sequence[Box],
                  levels: int | None = None) -> list[np.ndarray]:
        """Estimates (N, 5, 2) after each level 1..levels, in image pixels."""
        return self.run(grays, faces, levels, record=False)[0]

    def run(self, grays: Grays, faces: Sequence[Box], levels: int | None = None,
            record: bool = True, mirror: bool | None = None,
            first: Sequence["FirstLevel | None"] | None = None) -> tuple[list[np.ndarray], list[list]]:
        """(`estimates`, and with `record` for each level its nets' own points: a list of
        (spec, points (N, k, 2) in image pixels)), from one pass: the per-net points are what
        the levels compute anyway (common.confidence reads them). `mirror`: None for the
        cascade's own setting. `first`: per face, level 1's results to take instead of running
        it (a FirstLevel from an earlier pass on the same box, as first_levels gives; None:
        run it)."""
        levels = levels or self.levels
        if levels > self.levels:
            raise ValueError(f"cascade loaded {self.levels} levels, asked for {levels}")
        nets: list[list] = [[] for _ in range(levels)]
        if len(faces) == 0:
            return [np.zeros((0, len(POINTS), 2)) for _ in range(levels)], nets
        boxes = Boxes.of(faces)
        if first is not None and any(f is not None for f in first):
            listed = [grays[i] for i in range(len(grays))]
            est1, found1 = self._level1_reusing(listed, boxes, first, mirror)
            out = [est1]
            nets[0] = found1 if record else []
            grays = SourceImages(listed)  # once for the other levels
        else:
            grays = grays if isinstance(grays, SourceImages) else SourceImages(grays)  # once for all levels
            out = [self.level1(grays, boxes, record=nets[0] if record else None, mirror=mirror)]
        for level in range(2, levels + 1):
            out.append(self.patch_level(level, grays, boxes, out[-1], record=nets[level - 1] if record else None,
                                        mirror=mirror))
        return out, nets

    def _level1_reusing(self, grays: list, boxes: Boxes, first: Sequence["FirstLevel | None"],
                        mirror: bool | None) -> tuple[np.ndarray, list]:
        """Level 1's estimates (N, 5, 2) and (spec, points) list, run for the faces without a
        FirstLevel and taken from theirs for the others."""
        specs = of_level(1)
        n = len(boxes)
        est = np.empty((n, len(POINTS), 2))
        found = [np.empty((n, len(s.point_indices), 2)) for s in specs]
        todo = [i for i, f in enumerate(first) if f is None]
        if todo:
            rec: list = []
            est[todo] = self.level1([grays[i] for i in todo], boxes[todo], record=rec, mirror=mirror)
            for k, (_, pts) in enumerate(rec):
                found[k][todo] = pts
        for i, f in enumerate(first):
            if f is not None:
                box = boxes.box(i)
                est[i] = box.to_absolute(f.estimate)
                for k, rel_pts in enumerate(f.nets):
                    found[k][i] = box.to_absolute(rel_pts)
        return est, list(zip(specs, found))

    def points(self, gray: np.ndarray, faces: Sequence[Box]) -> np.ndarray:
        """Five points (N, 5, 2) for each face box in one gray image, after all levels."""
        return self.estimates([gray] * len(faces), faces)[-1]

    def estimates_for_samples(self, samples, levels: int | None = None, chunk: int = 1000,
                              progress: bool = True) -> list[np.ndarray]:
        """Estimates (N, 5, 2) in image pixels after each level 1..levels, for N list-file faces
        (common.listfile.FaceSample), their images read `chunk` at a time."""
        levels = levels or self.levels
        parts = [self.estimates(grays, [s.box for s in part], levels)
                 for part, grays in load_chunks(samples, chunk, progress, f"cascade L1-{levels}")]
        return [np.concatenate([p[lv] for p in parts]) for lv in range(levels)]


@dataclass(frozen=True)
class FirstLevel:
    """One face's level-1 results relative to the box it ran on (Box.to_relative): its
    estimate (5, 2) and each level-1 net's points (k, 2), in of_level(1)'s order. A tracker
    hands them back to Cascade.run while a face keeps its box: level 1 reads the same region
    of a still face, and levels 2 and 3 read the new frame."""
    estimate: np.ndarray
    nets: tuple


def first_levels(faces: Sequence[Box], estimates: Sequence[np.ndarray], nets: Sequence[list],
                 which: Sequence[int] | None = None) -> list[FirstLevel]:
    """The FirstLevel of each face (or of the faces numbered in `which`) from a Cascade.run's
    estimates and record."""
    boxes = list(faces)
    return [FirstLevel(boxes[i].to_relative(estimates[0][i]), tuple(boxes[i].to_relative(pts[i]) for _, pts in nets[0]))
            for i in (range(len(boxes)) if which is None else which)]


@lru_cache(maxsize=None)
def level_plan(specs: tuple[CascadeNet, ...]) -> tuple:
    """How net_points runs nets `specs` of one level, worked out once: per input size (w, h),
    the nets' indices in `specs`, and for each of them (net index, its mirror partner's place
    in that size's nets, for each of the partner's points the output of the net that finds it
    on the flipped crop, its own place); partner and order None for a net whose partner is not
    among them."""
    sizes: dict[tuple[int, int], list[int]] = {}
    for k, spec in enumerate(specs):
        sizes.setdefault((spec.width, spec.height), []).append(k)
    plan = []
    for size, ks in sizes.items():
        group = [specs[k] for k in ks]
        partners = [(k, *(mirror_partner(specs[k], group) or (None, None)), j) for j, k in enumerate(ks)]
        plan.append((size, tuple(ks), tuple((k, p, None if order is None else list(order), j)
                                            for k, p, order, j in partners)))
    return tuple(plan)


def load_chunks(samples, chunk: int = 1000, progress: bool = True, desc: str = "images",
                color: bool = False):
    """(samples, their images: gray, or BGR with `color`) a chunk at a time, read by a few
    threads (cv2 releases the GIL), with a progress bar: memory stays bounded on large lists."""
    load = (lambda s: s.load_color()) if color else (lambda s: s.load_gray())
    with ThreadPoolExecutor(4) as pool, tqdm(total=len(samples), desc=desc, unit="face", disable=not progress,
                                             dynamic_ncols=True, mininterval=1.0) as bar:
        for i in range(0, len(samples), chunk):
            part = samples[i:i + chunk]
            yield part, list(pool.map(load, part))
            bar.update(len(part))
