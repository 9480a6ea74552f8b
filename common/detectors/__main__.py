"""`python -m common.detectors`: load every face detector once (weights present, checksums
right) and say which work. Exit status 1 when the default detector cannot load."""
from __future__ import annotations

import sys

from common.detectors import DEFAULT_DETECTOR, WeightsMissing, detector_names, load_detector


def main() -> int:
    status = 0
    for name in detector_names():
        try:
            load_detector(name)
            print(f"[setup] face detector {name}: weights verified")
        except (WeightsMissing, FileNotFoundError) as exc:
            print(f"[setup] face detector {name}: {exc}", file=sys.stderr)
            status = 1 if name == DEFAULT_DETECTOR else status
    return status


if __name__ == "__main__":
    sys.exit(main())
