"""Build the small committed sample of the CUHK 5-point set that the tests and demos use.

    .venv/bin/python scripts/make_sample.py --data DIR [--out tests/data/sample]

DIR is the full CUHK 5-point set (default: $DEEP_LANDMARK_DATA, else dataset/train/).

Picks 300 training and 100 test faces (deterministically: a fixed seed), mixing lfw_5590/ and
net_7876/ in the proportions of the full lists and preferring small image files, copies their
images and writes trainImageList.txt / testImageList.txt in the same layout as the full set
(the list lines are copied unchanged, so paths stay relative to the list file).
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path


from common.listfile import ListFileError, parse_line
from common.paths import DATA_ENV, SAMPLE_DATA, TEST_LIST, TRAIN_LIST, DataMissing, data_lists, rel

COUNTS = {TRAIN_LIST: 300, TEST_LIST: 100}
MAX_BYTES = 60_000   # prefer images under this size: the sample stays small enough to commit
SEED = 20130623      # fixed: the same data set always gives the same sample
FOLDERS = ("lfw_5590", "net_7876")
README = """# CUHK 5-point sample (tests and demos)

{train} training and {test} test faces with their images, taken from the CUHK facial point data set
("Deep Convolutional Network Cascade for Facial Point Detection", Sun, Wang, Tang, CVPR 2013;
CUHK MMLab, file train.zip). Same layout as the full set: `trainImageList.txt`,
`testImageList.txt` (`path left right top bottom x1 y1 ... x5 y5`, points LE RE N LM RM), and the
images under `lfw_5590/` and `net_7876/`.

Like the full set, it is for research use only. It is a small sample kept for the project's
tests and demos; get the full set from the authors for anything else.

Built by `scripts/make_sample.py` (deterministic: seed {seed}, images under {kb} KB preferred,
both image folders mixed in the proportions of the full lists).
"""


def choose(lines: list[str], count: int, data: Path, rng: random.Random) -> list[str]:
    """`count` lines, each folder represented in proportion, small images first."""
    by_folder: dict[str, list[str]] = {f: [] for f in FOLDERS}
    for line in lines:
        path = line.split()[0].replace("\\", "/")
        folder = path.split("/")[0]
        if folder in by_folder and (data / path).stat().st_size <= MAX_BYTES:
            by_folder[folder].append(line)
    total = sum(len(v) for v in by_folder.values())
    if total < count:
        sys.exit(f"error: only {total} images under {MAX_BYTES} bytes; need {count}")
    picked: list[str] = []
    for i, folder in enumerate(FOLDERS):
        pool = by_folder[folder]
        n = count - len(picked) if i == len(FOLDERS) - 1 else round(count * len(pool) / total)
        picked += rng.sample(pool, n)
    # Keep the order of the original list: readers of the sample see it as a slice of the set.
    order = {line: i for i, line in enumerate(lines)}
    return sorted(picked, key=order.__getitem__)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help=f"CUHK data set folder (default: ${DATA_ENV}, else dataset/train/)")
    p.add_argument("--out", type=Path, default=SAMPLE_DATA, help=f"sample folder (default {rel(SAMPLE_DATA)})")
    args = p.parse_args(argv)
    try:
        lists = data_lists(args.data)
    except DataMissing as exc:
        sys.exit(f"error: {exc}")
    data = lists[0].parent
    out = args.out.resolve()
    if out == data:
        sys.exit("error: --out is the data set folder itself")
    rng = random.Random(SEED)
    for folder in FOLDERS:  # start clean, so the sample holds exactly what its lists name
        shutil.rmtree(out / folder, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    size = 0
    for list_path in lists:
        lines = [ln.strip() for ln in list_path.read_text().splitlines() if ln.strip()]
        picked = choose(lines, COUNTS[list_path.name], data, rng)
        for n, line in enumerate(picked, 1):
            try:  # only well-formed faces go into the sample
                parse_line(line, data, f"{list_path}:{n}")
            except ListFileError as exc:
                sys.exit(f"error: {exc}")
            path = line.split()[0].replace("\\", "/")
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data / path, out / path)
            size += (out / path).stat().st_size
        (out / list_path.name).write_text("\n".join(picked) + "\n")
        folders = {f: sum(ln.startswith(f) for ln in picked) for f in FOLDERS}
        print(f"{rel(out / list_path.name)}: {len(picked)} faces "
              + ", ".join(f"{k} {v}" for k, v in folders.items()))
    (out / "README.md").write_text(README.format(train=COUNTS[TRAIN_LIST], test=COUNTS[TEST_LIST],
                                                 seed=SEED, kb=MAX_BYTES // 1000))
    print(f"images: {size / 1e6:.1f} MB in {rel(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
