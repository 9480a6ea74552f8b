"""Level-2 training data: 15x15 patches (half-size 0.16 and 0.18 of the face box) centred on
level 1's estimates, for the ten nets LE21 ... RM22.

    python -m dataset.level2 [--data DIR] [--model model/] [--variants 20] [--force]
"""
from __future__ import annotations

from dataset.build import Jitter
from dataset.refine import main as refine_main

# Patch-centre noise of about the size of level 1's errors (a few % of the box).
JITTER = Jitter(angle=5.0, shift=0.0, scale=0.0, center_sigma=0.02, center_clip=0.07)

if __name__ == "__main__":
    raise SystemExit(refine_main(2, __doc__, JITTER))
