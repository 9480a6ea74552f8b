"""Level-3 training data: 15x15 patches (half-size 0.11 and 0.12 of the face box) centred on
level 2's estimates, for the ten nets LE31 ... RM32.

    python -m dataset.level3 [--data DIR] [--model model/] [--variants 20] [--force]
"""
from __future__ import annotations

from dataset.build import Jitter
from dataset.refine import main as refine_main

# Level 2 leaves smaller errors, so the patch centres move less.
JITTER = Jitter(angle=5.0, shift=0.0, scale=0.0, center_sigma=0.01, center_clip=0.04)

if __name__ == "__main__":
    raise SystemExit(refine_main(3, __doc__, JITTER))
