"""Level-1 training data: F1, EN1 and NM1 crops of every face, as HDF5 files for Caffe.

    python -m dataset.level1 [--data DIR] [--variants 10] [--limit N] [--force]

Each net gets its own region of the face box (common/nets.py) as a standardised gray crop, and
its own points relative to that crop as targets. Training faces are augmented (mirror, small
rotations, small box shifts and scales); test faces are not.
"""
from __future__ import annotations

from common.nets import of_level
from dataset.build import Jitter, write_level
from dataset.common_args import load_faces, parser

JITTER = Jitter(angle=10.0, shift=0.04, scale=0.05)


def main(argv=None) -> int:
    args = parser(__doc__, variants=10).parse_args(argv)
    train, test = load_faces(args)
    write_level(train, test, of_level(1), args.variants, JITTER, args.seed,
                hdf5_root=args.hdf5_root, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
