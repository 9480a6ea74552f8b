"""Command-line options shared by dataset/level{1,2,3}.py."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from common.listfile import FaceSample, ListFileError, read_list
from common.paths import DATA_ENV, DataMissing, HDF5_DIR, data_lists
from dataset.build import Jitter

log = logging.getLogger(__name__)


def parser(doc: str, variants: int) -> argparse.ArgumentParser:
    """The options every level's data command has."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help=f"data set folder (default ${DATA_ENV} or dataset/train/)")
    p.add_argument("--variants", type=int, default=variants,
                   help=f"training samples per face: original, mirror, random variants (default {variants})")
    p.add_argument("--limit", type=int, help="use only the first N faces of each list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="rebuild files that are already complete")
    p.add_argument("--hdf5-root", type=Path, default=HDF5_DIR, help="where the HDF5 folders go")
    return p


def load_faces(args) -> tuple[list[FaceSample], list[FaceSample]]:
    """(train faces, test faces), or exit with a clear message."""
    try:
        train_list, test_list = data_lists(args.data)
        train = read_list(train_list, args.limit)
        test = read_list(test_list, args.limit)
    except (DataMissing, ListFileError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
    log.info(f"faces: {len(train)} train ({train_list}), {len(test)} test ({test_list})")
    return train, test


JITTER_HELP = {
    "angle": "random rotation range, degrees +-",
    "shift": "random face box shift, fraction of the box +-",
    "scale": "random face box scale change, fraction +-",
    "center_sigma": "patch-centre shift of the random variants, fraction of the face box (Gaussian sigma)",
    "center_clip": "... clipped at +- this",
    "wear": "share of the random variants cut from a worn copy of the photo (blur, JPEG, noise, "
            "darkness, a small face blown up: common.image.degraded); 0: none",
}


def add_jitter_arguments(p: argparse.ArgumentParser, jitter: Jitter, names: tuple[str, ...]) -> None:
    """--angle, --center-sigma, ...: one flag per Jitter field in `names`, defaulting to `jitter`."""
    for name in names:
        default = getattr(jitter, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=default,
                       help=f"{JITTER_HELP[name]} (default {default:g})")


def jitter_from_args(args, jitter: Jitter, names: tuple[str, ...]) -> Jitter:
    if not 0.0 <= getattr(args, "wear", 0.0) <= 1.0:
        sys.exit(f"error: --wear is a share between 0 and 1, not {args.wear:g}")
    return replace(jitter, **{name: getattr(args, name) for name in names})
