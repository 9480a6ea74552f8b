"""Levels 2 and 3 share one recipe: patches centred on the previous level's estimates.

The previous levels run on the training and test faces through the cascade (common/cascade.py)
with the nets trained here; training patches are centred on those estimates plus a random
shift, so each net sees the spread of errors it must correct. Test patches are centred on the
estimates as they are.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common import hdf5data
from common.cascade import Cascade, ModelMissing
from common.evaluate import errors, summary
from common.nets import of_level
from common.paths import MODEL_DIR, rel
from dataset.build import Jitter, write_level
from dataset.common_args import add_jitter_arguments, jitter_from_args, load_faces, parser


JITTER_FLAGS = ("center_sigma", "center_clip")


def main(level: int, doc: str, jitter: Jitter, argv=None) -> int:
    p = parser(doc, variants=20)
    p.add_argument("--model", type=Path, default=MODEL_DIR,
                   help=f"where the trained levels 1..{level - 1} are (default model/)")
    add_jitter_arguments(p, jitter, JITTER_FLAGS)
    args = p.parse_args(argv)
    jitter = jitter_from_args(args, jitter, JITTER_FLAGS)
    train, test = load_faces(args)
    specs = of_level(level)
    # Checked here too, not only in write_level: it saves running the cascade on every face.
    if not args.force:
        if all(hdf5data.is_complete(Path(args.hdf5_root) / s.key) for s in specs):
            print(f"level-{level} data complete in {rel(args.hdf5_root)}; skipped (--force rebuilds)")
            return 0
    try:
        cascade = Cascade(args.model, levels=level - 1)
    except ModelMissing as exc:
        sys.exit(f"error: {exc}\n(level {level} patches are centred on level {level - 1}'s estimates)")
    estimates = {}
    for name, faces in (("train", train), ("test", test)):
        est = cascade.predict_samples(faces, level - 1)[-1]
        s = summary(errors(est, np.stack([f.points for f in faces]), np.array([f.box.width for f in faces])))
        print(f"level {level - 1} on the {name} faces: mean error {100 * s['mean_error']:.2f}% of box width, "
              f"failures {100 * s['failure_rate']:.2f}%")
        estimates[name] = est
    write_level(train, test, specs, args.variants, jitter, args.seed, hdf5_root=args.hdf5_root,
                train_estimates=estimates["train"], test_estimates=estimates["test"], force=True)
    return 0
