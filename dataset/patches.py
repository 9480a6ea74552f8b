"""Levels 2 and 3 share one recipe: patches centred on the previous level's estimates.

The previous levels run on the training and test faces through the cascade (common/cascade.py)
with the nets trained here; training patches are centred on those estimates plus a random
shift, so each net sees the spread of errors it must correct. Test patches are centred on the
estimates as they are.
"""
from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path

import numpy as np

from common import hdf5data
from common.cascade import Cascade, ModelMissing
from common.console import log_to_console
from common.listfile import FaceSample
from common.metrics import face_errors, summary
from common.netfiles import hdf5_dir, resolve_model
from common.nets import of_level
from common.paths import rel
from dataset.build import Jitter, write_level
from dataset.common_args import add_jitter_arguments, jitter_from_args, load_faces, parser

log = logging.getLogger(__name__)

JITTER_FLAGS = ("angle", "center_sigma", "center_clip", "wear")


def estimates(cascade: Cascade, level: int, faces: list[FaceSample], name: str) -> np.ndarray:
    """Points (N, 5, 2) in image pixels after levels 1..`level` - 1, the patch centres of
    `level`; says how far they are from the truth."""
    est = cascade.estimates_for_samples(faces, level - 1)[-1]
    s = summary(face_errors(est, faces))
    log.info(f"level {level - 1} on the {name} faces: mean error {100 * s['mean_error']:.2f}% of box width, "
             f"failures {100 * s['failure_rate']:.2f}%")
    return est


def main(level: int, doc: str, jitter: Jitter, argv=None) -> int:
    p = parser(doc, variants=20)
    p.add_argument("--model", type=Path,
                   help=f"where the trained levels 1..{level - 1} are (default: model/, where they are "
                        "trained; not $DEEP_LANDMARK_MODEL, which names the model the other commands use)")
    add_jitter_arguments(p, jitter, JITTER_FLAGS)
    args = p.parse_args(argv)
    log_to_console()
    jitter = jitter_from_args(args, jitter, JITTER_FLAGS)
    train, test = load_faces(args)
    specs = of_level(level)
    # Checked here too, not only in write_level: it saves running the cascade on every face.
    if not args.force:
        if all(hdf5data.is_complete(hdf5_dir(s, args.hdf5_root)) for s in specs):
            log.info(f"level-{level} data complete in {rel(args.hdf5_root)}; skipped (--force rebuilds)")
            return 0
    try:
        # Without test-time mirroring: the patch centres the released nets were trained on
        # (the pipeline reproduces the release bit for bit).
        cascade = Cascade(resolve_model(args.model, trained_here=True), levels=level - 1, mirror=False)
    except ModelMissing as exc:
        sys.exit(f"error: {exc}\n(level {level} patches are centred on level {level - 1}'s estimates)")
    write_level(train, test, specs, args.variants, jitter, args.seed, hdf5_root=args.hdf5_root,
                train_estimates=estimates(cascade, level, train, "train"),
                test_estimates=estimates(cascade, level, test, "test"), force=True)
    return 0


def command(level: int, doc: str, jitter: Jitter):
    """The main(argv=None) of the level's data command (dataset/level2.py, level3.py)."""
    return partial(main, level, doc, jitter)
