"""The C loop that cuts a batch of crops (common/cropkernel.c), and the images it cuts from.

scripts/setup.sh compiles cropkernel.c (`python -m common.cropkernel --build`) into
.venv/lib/deep-landmark/, the file named by the source's checksum, so an edited source is never
run from an old build; when it cannot compile, the set-up warns and goes on. Without the
build (the set-up not run, or no compiler), or with
DEEP_LANDMARK_OPENCV_CROPS=1 in the environment (or `enable(False)`), `load()` says None and
common.box cuts with OpenCV, one call per crop: the same bytes, slower.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import os
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from common.paths import ROOT

SOURCE = Path(__file__).with_name("cropkernel.c")
LIB_DIR = ROOT / ".venv" / "lib" / "deep-landmark"
# No fused multiply-add (OpenCV rounds each product), lrint inlined; nothing machine-specific,
# so the build runs on any x86-64 or ARM machine it is copied to.
CFLAGS = ["-O2", "-fno-math-errno", "-ffp-contract=off", "-fPIC", "-shared"]


def library_path() -> Path:
    """Where scripts/setup.sh puts the build of today's source."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    return LIB_DIR / f"cropkernel-{digest}.so"


# dl_crops sorts a call's crops by size on one 64-bit key: 21 bits each for the cut's width,
# height and the crop's index.
MAX_CROPS = MAX_SIDE = (1 << 21) - 1


def fits(mid_w: np.ndarray, mid_h: np.ndarray) -> bool:
    """Whether cuts of these sizes fit the C loop's sort key (all but absurd boxes do)."""
    return len(mid_w) == 0 or max(int(mid_w.max()), int(mid_h.max())) <= MAX_SIDE


_enabled = os.environ.get("DEEP_LANDMARK_OPENCV_CROPS", "") not in ("1", "yes", "true")


def enable(on: bool = True) -> None:
    """Use the C loop when built (on) or OpenCV (off): for comparing the two in one process."""
    global _enabled
    _enabled = on


def load():
    """The C function, or None: not built, or turned off."""
    return _load() if _enabled else None


@lru_cache(maxsize=1)
def _load():
    path = library_path()
    return load_library(path) if path.exists() else None


def load_library(path: Path):
    """dl_crops of the library at `path` (tests load other builds of the same source)."""
    lib = ctypes.CDLL(str(path))
    fn = lib.dl_crops
    ptr = ctypes.c_void_p
    fn.argtypes = [ctypes.c_int, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ptr, ctypes.c_int, ctypes.c_int, ptr]
    fn.restype = ctypes.c_int
    return fn


class SourceImages:
    """Face i's image for a batch of faces, as the C loop takes them: each distinct array once
    (pointer, width, height, row step) and an index per face. Made once per batch and shared by
    the crops of every level (`repeat` for K crops per face)."""

    def __init__(self, images: Sequence[np.ndarray]):
        first: dict[int, int] = {}
        self.index = np.array([first.setdefault(id(im), len(first)) for im in images], dtype=np.int64)
        self.images: list[np.ndarray] = [None] * len(first)  # type: ignore[list-item]
        for im, j in zip(images, self.index.tolist()):
            self.images[j] = im
        self.dtype = self.images[0].dtype if self.images else np.dtype(np.uint8)
        # The C loop reads 8-bit gray images whose rows are contiguous.
        self.native = all(im.dtype == np.uint8 and im.ndim == 2 and im.strides[1] == 1 and min(im.shape) > 0
                          for im in self.images)
        if self.native:
            self.pointers = np.array([im.ctypes.data for im in self.images], dtype=np.uintp)
            self.widths = np.array([im.shape[1] for im in self.images], dtype=np.intc)
            self.heights = np.array([im.shape[0] for im in self.images], dtype=np.intc)
            self.steps = np.array([im.strides[0] for im in self.images], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[self.index[i]]

    def repeat(self, times: int) -> "SourceImages":
        """These faces' images `times` over (the same arrays, no copy)."""
        other = object.__new__(SourceImages)
        other.__dict__.update(self.__dict__)
        other.index = np.tile(self.index, times)
        return other


def cut(sources: SourceImages, start: int, stop: int, mats: np.ndarray, mid_w: np.ndarray,
        mid_h: np.ndarray, out: np.ndarray) -> None:
    """Crops start..stop-1 of a batch into out[start:stop] (N, out_h, out_w) uint8, by the C loop
    (load() must not be None): crop i from sources[i], cut at mid_w[i] x mid_h[i] by the matrix
    mats[i] (2, 3) as warpAffine takes it, as common.box.Boxes.crops describes."""
    fn = load()
    params = np.ascontiguousarray(mats[start:stop], dtype=np.float64)  # (k, 2, 3), as warpAffine takes them
    index = np.ascontiguousarray(sources.index[start:stop])
    widths = np.ascontiguousarray(mid_w[start:stop], dtype=np.intc)
    heights = np.ascontiguousarray(mid_h[start:stop], dtype=np.intc)
    view = out[start:stop]
    if not (view.flags.c_contiguous and view.dtype == np.uint8):
        raise ValueError("cropkernel.cut writes into a C-contiguous uint8 array")
    status = fn(stop - start, sources.pointers.ctypes.data, sources.widths.ctypes.data,
                sources.heights.ctypes.data, sources.steps.ctypes.data, index.ctypes.data,
                params.ctypes.data, widths.ctypes.data, heights.ctypes.data, out.shape[2], out.shape[1],
                view.ctypes.data)
    if status:
        raise MemoryError("cropkernel: out of memory for the crops' buffers")


def build(compiler: str = "cc") -> tuple[Path, bool]:
    """(the library for today's source, whether it was compiled now): compiles it with
    `compiler` (a command line, as $CC holds: "ccache gcc") unless it is there, and removes
    builds of older sources."""
    out = library_path()
    if out.exists():
        return out, False
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    subprocess.run([*shlex.split(compiler), *CFLAGS, "-o", str(partial), str(SOURCE), "-lm"], check=True)
    partial.replace(out)
    for old in LIB_DIR.glob("cropkernel-*.so"):
        if old != out:
            old.unlink()
    return out, True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="store_true", help="compile the library unless it is there")
    ap.add_argument("--cc", default="cc", help="C compiler (default cc)")
    args = ap.parse_args(argv)
    if args.build:
        try:
            path, fresh = build(args.cc)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"cropkernel: could not compile {SOURCE.name} with {args.cc} ({e}); crops fall back "
                  "to OpenCV (the same pixels, slower)", file=sys.stderr)
            return 1
        print(f"crop kernel {'compiled' if fresh else 'up to date'}: {path.relative_to(ROOT)}")
        return 0
    path = library_path()
    state = ("in use" if load() is not None else "turned off (DEEP_LANDMARK_OPENCV_CROPS)" if path.exists()
             else "not built: run scripts/setup.sh")
    print(f"crop kernel {state}: {path.relative_to(ROOT)}; without it crops go through OpenCV (the same pixels, slower)")
    return 0 if path.exists() else 1


if __name__ == "__main__":
    sys.exit(main())
